"""String expressions (being split into modules; see kernels.py)."""
from .kernels import *  # noqa: F401,F403
from .kernels import _PLANS, _SHORT_SLOTS_MAX, _sparse  # noqa: F401
