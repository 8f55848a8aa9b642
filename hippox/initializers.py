"""Initializers for SSM parameters (the ``jax.nn.initializers`` protocol).

Each factory returns ``init(key, shape, dtype=None) -> jax.Array``; see
`hippox._src.initializers` for the storage conventions (complex values as real leaves,
the ``Lambda_re`` transforms, the half/full layout). The factories live in
`hippox._src.initializers` (Lambda, P, B, C, D, log_dt) and
`hippox._src.dense_initializers` (S5's B and C, LSSL's A and B); the ``Lambda_re``
transforms in `hippox._src.parameterization`.
"""

from hippox._src.dense_initializers import S5CInit as S5CInit
from hippox._src.dense_initializers import s5_b as s5_b
from hippox._src.dense_initializers import s5_c as s5_c
from hippox._src.dense_initializers import transition_a as transition_a
from hippox._src.dense_initializers import transition_b as transition_b
from hippox._src.init_protocol import Initializer as Initializer
from hippox._src.initializers import b as b
from hippox._src.initializers import c as c
from hippox._src.initializers import d as d
from hippox._src.initializers import lambda_im as lambda_im
from hippox._src.initializers import lambda_re as lambda_re
from hippox._src.initializers import log_dt as log_dt
from hippox._src.initializers import p as p
from hippox._src.parameterization import LAMBDA_RE_TRANSFORMS as LAMBDA_RE_TRANSFORMS
from hippox._src.parameterization import REAL_MAX as REAL_MAX
from hippox._src.parameterization import LambdaReTransform as LambdaReTransform
from hippox._src.parameterization import lambda_from_params as lambda_from_params
from hippox._src.parameterization import lambda_re_forward as lambda_re_forward

__all__ = sorted(name for name in dir() if not name.startswith("_"))
