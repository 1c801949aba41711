"""stpr: low-light video enhancement with STPR (spatio-temporal propagation and reconstruction).

Quick use::

    from stpr import Enhancer
    enhancer = Enhancer.from_pretrained()           # shipped default model
    enhancer.enhance_video("night.mp4", "night_stpr.mp4")
    for frame in enhancer.enhance_frames(frames):   # (H, W, 3) uint8 RGB in, same out
        ...
"""

# Before torch is first imported: OpenMP threads must not spin on a shared machine (see _threads).
from stpr._threads import set_passive_openmp

set_passive_openmp()

from stpr.enhance import Enhancer  # noqa: E402
from stpr.models.stpr_arch import STPR, STPRConfig  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Enhancer", "STPR", "STPRConfig", "__version__"]
