"""Value checks that also work on traced values, under `jax.experimental.checkify`.

hippox validates argument *values* (a step ``dt > 0``, times ``t >= 0``, a stable
``Lambda``) eagerly, with a ``ValueError`` naming the argument, whenever the value is
known when the function is called. Inside `jax.jit` (or `jax.grad`, `jax.vmap`, a
`lax.scan` body) the value is traced and cannot be inspected in Python; for those
values hippox also emits `checkify.debug_check` predicates, which cost nothing unless the
computation is wrapped in `jax.experimental.checkify.checkify`::

    from jax.experimental import checkify

    f = jax.jit(lambda dt: hippox.kernel_diag(Lambda, B, C, dt, L))
    err, K = checkify.checkify(f)(dt)   # the checks run inside the compiled code
    err.throw()                          # ValueError-like JaxRuntimeError naming `dt`

Without ``checkify`` the predicates are dropped from the compiled program. Checks of
shapes, dtypes, flags, sizes and names are always eager (they are static under jit).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _debug_check(pred, msg: str, **values) -> None:
    from jax.experimental import checkify  # imported lazily: only needed when traced

    checkify.debug_check(pred, msg, **values)


def traced_positive_finite(name: str, x: jax.Array) -> None:
    """Under checkify: every entry of ``x`` finite and > 0."""
    ok = jnp.all(jnp.isfinite(x) & (x > 0))
    _debug_check(ok, f"`{name}` must be finite and > 0 elementwise, got {{value}}.", value=x)


def traced_nonnegative(name: str, x: jax.Array) -> None:
    """Under checkify: no entry of ``x`` negative (NaN passes: it propagates as NaN)."""
    ok = ~jnp.any(x < 0)
    _debug_check(ok, f"`{name}` must be >= 0 elementwise, got {{value}}.", value=x)


def traced_stable(name: str, x: jax.Array) -> None:
    """Under checkify: ``Re(x) <= 0`` for every entry (up to 64 ulp of ``max |x|``)."""
    re = jnp.real(x)
    dtype = re.dtype  # every operand in x's own precision (no float64 under x64)
    scale = jnp.max(jnp.append(jnp.abs(x).ravel().astype(dtype), jnp.zeros((), dtype)))
    tol = jnp.asarray(64 * jnp.finfo(dtype).eps, dtype) * scale
    ok = ~jnp.any(re > tol)
    _debug_check(ok, f"`{name}` must have Re({name}) <= 0, got {{value}}.", value=x)


def traced_index(name: str, k: jax.Array, upper) -> None:
    """Under checkify: integer ``0 <= k < upper`` elementwise (e.g. a step index)."""
    ok = jnp.all((k >= 0) & (k < upper))
    _debug_check(ok, f"`{name}` must be in [0, {{upper}}), got {{value}}.", value=k, upper=upper)
