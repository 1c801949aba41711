"""stpr: low-light video enhancement with STPR (spatio-temporal propagation and reconstruction).

Quick use::

    from stpr import Enhancer
    enhancer = Enhancer.from_pretrained()           # shipped default model
    enhancer.enhance_video("night.mp4", "night_stpr.mp4")
    for frame in enhancer.enhance_frames(frames):   # (H, W, 3) uint8 RGB in, same out
        ...
"""

from stpr.enhance import Enhancer
from stpr.models.stpr_arch import STPR, STPRConfig

__version__ = "0.1.0"
__all__ = ["Enhancer", "STPR", "STPRConfig", "__version__"]
