"""Compatibility shim: ``from hippox.main import Hippo`` as in the original hippox."""

from hippox._src.compat import Hippo as Hippo
from hippox._src.compat import HippoParams as HippoParams
