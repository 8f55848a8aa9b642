"""The hippox 0.0.x API: the `Hippo` dataclass and its initializers.

Kept so code written for the original hippox runs unchanged (``hippox.Hippo`` and
``from hippox.main import Hippo`` resolve here too). New code should use the
functional API (`hippox.nplr`, `hippox.diag_init`, `hippox.initializers`).
"""

from hippox._src.compat import HIPPO_MEASURES as HIPPO_MEASURES
from hippox._src.compat import EigenvectorPair as EigenvectorPair
from hippox._src.compat import Hippo as Hippo
from hippox._src.compat import HippoParams as HippoParams

__all__ = ["EigenvectorPair", "HIPPO_MEASURES", "Hippo", "HippoParams"]
