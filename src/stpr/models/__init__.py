"""STPR network parts, one file each.

* ``flow_arch``: flow estimation module (learned pyramid flow + OpenCV DIS)
* ``propagation_arch``: feature propagation subnet
* ``prrd_arch``: pyramid recursive residual dense subnet
* ``reconstruction_arch``: spatio-temporal feature reconstruction subnet
* ``stpr_arch``: the full network and its config
* ``warp``: ``flow_warp`` and masks shared by all users of flow
"""

from stpr.models.stpr_arch import STPR, STPRConfig

__all__ = ["STPR", "STPRConfig"]
