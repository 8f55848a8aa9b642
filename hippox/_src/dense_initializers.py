"""Initializers of dense matrices: S5's eigenbasis ``B``, ``C`` and LSSL's HiPPO ``A``, ``B``.

Each factory follows the protocol of `hippox._src.init_protocol` (``init(key, shape,
dtype=None)``, ``shape`` the source of truth) and is exported as
``hippox.initializers``:

- `s5_b`, `s5_c`: a dense real input / output matrix drawn at random and moved into
  the eigenbasis of S5's block-diagonal HiPPO-N matrix (`hippox.block_diagonal_init`),
  stored as (real, imaginary) pairs: ``B_tilde = V⁻¹ B``, ``C_tilde = C V``.
- `transition_a`, `transition_b`: the dense HiPPO ``A`` and ``B`` of a measure
  (`hippox.transition`), for a learnable LSSL.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from hippox._src import _validate, diagonal, matrices
from hippox._src.init_protocol import (
    Initializer,
    block_state_size,
    draw_dtype,
    shape_and_dtype,
)
from hippox._src.parameterization import pair_from_complex

# --------------------------------------------------------------------------- S5


#: The draws `s5_c` offers for S5's ``C_tilde``.
S5CInit = Literal["trunc_standard_normal", "lecun_normal", "complex_normal"]

# std of a normal truncated to [-2, 2] is 0.8796; rescale so the truncated draw has unit variance.
_TRUNC_STD_UNIT = 1.0 / 0.87962566103423978


class _S5Options(NamedTuple):
    """The checked options shared by `s5_b` and `s5_c`."""

    blocks: int
    conj_sym: bool
    measure: str  # canonical NPLR measure

    @classmethod
    def check(cls, blocks, conj_sym, measure) -> _S5Options:
        blocks = _validate.check_size("blocks", blocks)
        conj_sym = _validate.check_bool("conj_sym", conj_sym)
        return cls(blocks, conj_sym, matrices.canonical_nplr_measure(measure))

    def layout(self, key, shape, dtype, order: str, what: str):
        """Checks an ``(M, H, 2)`` / ``(H, M, 2)`` call: ``(shape, dtype, H, N, V, Vinv)``.

        N is the real state size ``J·N_block``; ``(V, Vinv)`` are the complex128 host
        eigenvectors of `hippox.block_diagonal_init` (cached).
        """
        shape, dtype = shape_and_dtype(shape, dtype)
        if len(shape) != 3 or shape[-1] != 2:
            raise ValueError(f"`shape` must be {order} for {what}, got {shape}.")
        M, H = (shape[0], shape[1]) if order == "(M, H, 2)" else (shape[1], shape[0])
        J, conj_sym = self.blocks, self.conj_sym
        N_block = block_state_size(M, conj_sym, J, what=what, shape=shape)
        _, V, Vinv = diagonal.block_diagonal_host(self.measure, N_block, J, conj_sym, ())
        _validate.check_key("key", key, what)
        return shape, dtype, H, N_block * J, V, Vinv


def s5_b(*, blocks: int = 1, conj_sym: bool = True, measure: str = "legs") -> Initializer:
    """Initializer of S5's input matrix in the eigenbasis, ``B_tilde = V⁻¹ B``.

    ``B`` is a real ``(N, H)`` matrix with LeCun-normal entries (truncated normal of
    variance ``1/N``, ``jax.nn.initializers.lecun_normal`` with fan-in N); ``V⁻¹``
    (``Vinv``) comes from `hippox.block_diagonal_init` with J = ``blocks`` blocks of
    size ``N/J``. N is the real state size: ``2M`` (conj_sym) or ``M``.

    Args:
      blocks: J, the number of HiPPO-N blocks (M divisible by J).
      conj_sym: half or full layout.
      measure: the NPLR measure of each block (default ``legs``, as in S5).

    Returns:
      ``init(key, shape, dtype=None)`` for ``shape`` ``(M, H, 2)``; needs a key.

    Raises:
      ValueError: bad options (at once); a bad shape or ``key=None`` (when called).

    Examples:
      >>> import jax
      >>> from hippox import initializers
      >>> initializers.s5_b(blocks=2)(jax.random.key(0), (4, 3, 2)).shape
      (4, 3, 2)
    """
    opts = _S5Options.check(blocks, conj_sym, measure)

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        what = f"s5_b(blocks={opts.blocks}, conj_sym={opts.conj_sym})"
        shape, dtype, H, N, _, Vinv = opts.layout(key, shape, dtype, "(M, H, 2)", what)
        rd = draw_dtype()
        cd = _validate.complex_dtype(rd)
        B = jax.nn.initializers.lecun_normal(in_axis=0, out_axis=1)(key, (N, H), rd)
        return pair_from_complex(jnp.asarray(Vinv, cd) @ B.astype(cd), xp=jnp).astype(dtype)

    return initializer


def s5_c(
    init: S5CInit = "trunc_standard_normal",
    *,
    blocks: int = 1,
    conj_sym: bool = True,
    measure: str = "legs",
) -> Initializer:
    """Initializer of S5's output matrix in the eigenbasis, ``C_tilde = C V``.

    Inits:

    - ``trunc_standard_normal``: ``C`` real ``(H, N)``, i.i.d. truncated standard normal
      (unit variance), then ``C V``;
    - ``lecun_normal``: ``C`` real ``(H, N)`` with variance ``1/N`` (LeCun normal, fan-in
      N), then ``C V``;
    - ``complex_normal``: ``C_tilde`` drawn directly, real and imaginary parts i.i.d.
      ``N(0, 1/2)``.

    Args:
      init: one of the three names above.
      blocks: J, the number of HiPPO-N blocks.
      conj_sym: half or full layout.
      measure: the NPLR measure of each block (default ``legs``).

    Returns:
      ``init(key, shape, dtype=None)`` for ``shape`` ``(H, M, 2)``; needs a key.

    Examples:
      >>> import jax
      >>> from hippox import initializers
      >>> initializers.s5_c(blocks=2)(jax.random.key(0), (3, 4, 2)).shape
      (3, 4, 2)
    """
    init = _validate.check_choice(
        "init", init, ("trunc_standard_normal", "lecun_normal", "complex_normal")
    )
    opts = _S5Options.check(blocks, conj_sym, measure)

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        what = f"s5_c({init!r}, blocks={opts.blocks}, conj_sym={opts.conj_sym})"
        shape, dtype, H, N, V, _ = opts.layout(key, shape, dtype, "(H, M, 2)", what)
        rd = draw_dtype()
        if init == "complex_normal":
            return (jax.random.normal(key, shape, rd) * np.sqrt(0.5)).astype(dtype)
        if init == "lecun_normal":
            C = jax.nn.initializers.lecun_normal(in_axis=1, out_axis=0)(key, (H, N), rd)
        else:
            C = jax.nn.initializers.truncated_normal(stddev=_TRUNC_STD_UNIT)(key, (H, N), rd)
        cd = _validate.complex_dtype(rd)
        return pair_from_complex(C.astype(cd) @ jnp.asarray(V, cd), xp=jnp).astype(dtype)

    return initializer


# ------------------------------------------------------------------------------ LSSL


def transition_a(measure: str = "legs", **params) -> Initializer:
    """Initializer of a dense HiPPO state matrix ``A`` (a learnable LSSL ``A``).

    Args:
      measure: a deterministic measure of `hippox.MEASURES` (``legs``, ``legt``, ...).
      **params: measure parameters.

    Returns:
      ``init(key, shape, dtype=None)`` for ``shape`` ``(N, N)``: `hippox.transition`'s A.

    Examples:
      >>> from hippox import initializers
      >>> import numpy as np
      >>> import hippox
      >>> A = initializers.transition_a("legs")(None, (2, 2))
      >>> A.shape, bool(np.allclose(A, hippox.transition("legs", 2).A))
      ((2, 2), True)
    """
    return _transition_factory("A", measure, params)


def transition_b(measure: str = "legs", **params) -> Initializer:
    """Initializer of a dense HiPPO input vector ``B`` (a learnable LSSL ``B``).

    Args:
      measure: a deterministic measure of `hippox.MEASURES`.
      **params: measure parameters.

    Returns:
      ``init(key, shape, dtype=None)`` for ``shape`` ``(N,)``: `hippox.transition`'s B.

    Examples:
      >>> from hippox import initializers
      >>> initializers.transition_b("legs")(None, (2,))
      Array([1.       , 1.7320508], dtype=float32)
    """
    return _transition_factory("B", measure, params)


def _transition_factory(which: str, measure: str, params: dict) -> Initializer:
    measure = matrices.canonical_measure(measure)
    if measure in matrices.RANDOM_MEASURES:
        raise ValueError(
            f"`measure` must be a deterministic measure for transition_{which.lower()}, "
            f"got {measure!r}."
        )
    ptuple = matrices.check_measure_params(measure, params)

    def initializer(key, shape, dtype: DTypeLike | None = None) -> jax.Array:
        shape, dtype = shape_and_dtype(shape, dtype)
        ok = (len(shape) == 2 and shape[0] == shape[1]) if which == "A" else len(shape) == 1
        if not ok or shape[0] < 1:
            expected = "(N, N)" if which == "A" else "(N,)"
            raise ValueError(
                f"`shape` must be {expected} for transition_{which.lower()}({measure!r}), "
                f"got {shape}."
            )
        A, B = matrices.transition_host(measure, shape[0], ptuple)
        return jnp.asarray(A if which == "A" else B, dtype)

    return initializer
