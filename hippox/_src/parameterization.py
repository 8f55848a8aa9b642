"""How complex SSM quantities are stored as real leaves, and the conjugate layouts.

One home for three conventions every layer, initializer and kernel shares:

- **Lambda_re transforms.** The stored leaf ``Lambda_re`` maps to ``Re(Lambda) < 0``
  by a transform; the initializers store its inverse so a layer sees exactly the
  initial spectrum:

  ============  ==================================  ===============================
  transform     stored raw value -> Re(Lambda)       raw value stored for Re(Lambda)
  ============  ==================================  ===============================
  ``exp``       ``-exp(raw)``                        ``log(-Re)``
  ``softplus``  ``-softplus(raw)``                   ``log(expm1(-Re))``
  ``clip``      ``min(raw, -1e-4)``                  ``Re``
  ============  ==================================  ===============================

- **Real pairs.** ``P``, ``B``, ``C`` are stored with a trailing axis of 2 holding
  (real, imaginary) parts, so every optax transform is correct on them
  (`complex_from_pair`, `pair_from_complex`).
- **Half / full conjugate layouts.** With ``conj_sym=True`` the M = N/2 stored modes
  are one of each conjugate pair of a real system of size N; the full layout is the
  half values followed by their conjugates, ``concat([x, conj(x)])``
  (`conj_closed`, `full_layout`).

The functions that are used on the host at init time take ``xp`` (``numpy`` or
``jax.numpy``) so the formula is written once for both.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from hippox._src import _validate

#: The name of a ``Lambda_re`` transform (`LAMBDA_RE_TRANSFORMS`): ``exp``, ``softplus``, ``clip``.
LambdaReTransform = Literal["exp", "softplus", "clip"]
#: The transforms accepted for ``Lambda_re`` (see the module docstring).
LAMBDA_RE_TRANSFORMS: tuple[str, ...] = ("exp", "softplus", "clip")
#: The largest real part a transform produces: ``Re(Lambda) <= -REAL_MAX`` for ``clip``.
REAL_MAX = 1e-4


def lambda_re_forward(raw: jax.Array, transform: LambdaReTransform) -> jax.Array:
    """Maps a stored ``Lambda_re`` leaf to ``Re(Lambda) < 0`` (pure jnp, differentiable).

    Args:
      raw: stored parameter, any shape, real.
      transform: ``exp`` (``-exp(raw)``), ``softplus`` (``-softplus(raw)``) or ``clip``
        (``min(raw, -1e-4)``).

    Returns:
      ``Re(Lambda)``, same shape and dtype as ``raw``, strictly negative.

    Examples:
      >>> import jax.numpy as jnp
      >>> from hippox import initializers
      >>> raw = jnp.log(jnp.asarray([0.5, 2.0], jnp.float32))
      >>> initializers.lambda_re_forward(raw, "exp")
      Array([-0.5, -2. ], dtype=float32)
    """
    _validate.check_choice("transform", transform, LAMBDA_RE_TRANSFORMS)
    if transform == "exp":
        return -jnp.exp(raw)
    if transform == "softplus":
        return -jax.nn.softplus(raw)
    return jnp.minimum(raw, -REAL_MAX)


def lambda_re_inverse(re, transform: LambdaReTransform, *, xp=np):
    """The stored value whose `lambda_re_forward` is ``max(re, ...)`` floored at ``-REAL_MAX``.

    Args:
      re: the wanted real parts (``< 0``; values above ``-REAL_MAX`` are floored).
      transform: ``exp``, ``softplus`` or ``clip``.
      xp: ``numpy`` (host, float64 at init) or ``jax.numpy`` (traced).
    """
    re = xp.minimum(re, -REAL_MAX)
    if transform == "exp":
        return xp.log(-re)
    if transform == "softplus":
        # log(expm1(x)) for x = -re > 0, written x + log(-expm1(-x)) so it never overflows
        return -re + xp.log(-xp.expm1(re))
    return re


def lambda_from_params(
    Lambda_re: jax.Array, Lambda_im: jax.Array, *, transform: LambdaReTransform = "exp"
) -> jax.Array:
    """Rebuilds the complex ``Lambda`` from its stored leaves.

    Args:
      Lambda_re: stored real-part leaf, real, any shape.
      Lambda_im: imaginary part, same shape.
      transform: the transform ``Lambda_re`` was stored with.

    Returns:
      ``lambda_re_forward(Lambda_re, transform) + 1j * Lambda_im``, complex (complex64
      for float32/bfloat16 leaves, complex128 for float64).

    Examples:
      >>> import jax.numpy as jnp
      >>> from hippox import initializers
      >>> re = jnp.asarray([-1.0], jnp.float32)
      >>> initializers.lambda_from_params(re, jnp.asarray([2.0], jnp.float32), transform="clip")
      Array([-1.+2.j], dtype=complex64)
    """
    re = lambda_re_forward(
        _validate.as_inexact("Lambda_re", Lambda_re, allow_complex=False), transform
    )
    im = _validate.as_inexact("Lambda_im", Lambda_im, allow_complex=False)
    rd = _validate.compute_dtype(re, im)
    return jax.lax.complex(re.astype(rd), im.astype(rd))


def complex_from_pair(x: jax.Array) -> jax.Array:
    """A complex array from a real one with a trailing (real, imaginary) axis of 2."""
    return jax.lax.complex(x[..., 0], x[..., 1])


def pair_from_complex(z, *, xp=np):
    """The real storage of a complex array: a trailing (real, imaginary) axis of 2."""
    return xp.stack([z.real, z.imag], axis=-1)


def conj_closed(x, *, axis: int = -1, xp=jnp):
    """The conjugate-closed (full) layout of half-layout modes: ``concat([x, conj(x)])``."""
    return xp.concatenate([x, xp.conj(x)], axis=axis)


def full_layout(x, conj_sym: bool, *, axis: int = -1, xp=jnp):
    """``x`` itself for the half layout (``conj_sym=True``), else `conj_closed` of it."""
    return x if conj_sym else conj_closed(x, axis=axis, xp=xp)
