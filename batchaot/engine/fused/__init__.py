"""The fused JIT tier (being split into modules; see codegen.py)."""
from .codegen import *  # noqa: F401,F403
