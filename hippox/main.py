"""Compatibility shim: ``from hippox.main import Hippo`` as in the original hippox."""

from hippox.compat import Hippo as Hippo
from hippox.compat import HippoParams as HippoParams

__all__ = ["Hippo", "HippoParams"]
