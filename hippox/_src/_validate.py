"""Eager validation of user input, with errors worded "`arg` must <condition>, got <value>."."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from hippox._src import checks


def check_size(name: str, value, *, minimum: int = 1, even: bool = False) -> int:
    """Returns `value` as a Python int after checking it is an integer >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be an integer, got {value!r} of type {type(value).__name__}."
        )
    value = int(value)
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value}.")
    if even and value % 2:
        raise ValueError(f"`{name}` must be even, got {value}.")
    return value


def check_choice(name: str, value, allowed: Iterable[str]) -> str:
    """Checks that `value` is one of the strings in `allowed`."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")
    return value


def check_real(name: str, value, *, positive: bool = False, low=None, high=None) -> float:
    """Checks a real scalar hyperparameter (a Python or NumPy number)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {value!r}.")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value}.")
    if positive and value <= 0:
        raise ValueError(f"`{name}` must be > 0, got {value}.")
    if low is not None and value < low:
        raise ValueError(f"`{name}` must be >= {low}, got {value}.")
    if high is not None and value > high:
        raise ValueError(f"`{name}` must be <= {high}, got {value}.")
    return value


def real_dtype(dtype, *, name: str = "dtype") -> np.dtype:
    """Resolves a requested real floating dtype (default float32).

    float64 is only allowed when `jax_enable_x64` is on: JAX would otherwise silently
    truncate it to float32.
    """
    if dtype is None:
        return np.dtype(np.float32)
    try:
        resolved = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"`{name}` must be a floating dtype, got {dtype!r}.") from err
    if not jnp.issubdtype(resolved, jnp.floating):
        raise ValueError(
            f"`{name}` must be a real floating dtype (float32, float64, bfloat16, float16), "
            f"got {resolved}."
        )
    if resolved == np.float64 and not jax.config.jax_enable_x64:
        raise ValueError(
            f"`{name}` float64 needs `jax.config.update('jax_enable_x64', True)`; got {resolved} "
            "with x64 disabled."
        )
    return resolved


def complex_dtype(dtype) -> np.dtype:
    """The complex dtype that matches a real dtype: complex128 for float64, else complex64.

    JAX has no half-precision complex type, so bfloat16/float16 map to complex64.
    """
    return np.dtype(np.complex128) if np.dtype(dtype) == np.float64 else np.dtype(np.complex64)


def require_key(name: str, key, what: str):
    """Refuses `key=None` for functions that draw random numbers."""
    if key is None:
        raise ValueError(
            f"`{name}` must be a jax.random key for {what} (it draws random numbers), got None. "
            "Pass e.g. `jax.random.key(0)`."
        )
    return key


def check_bool(name: str, value) -> bool:
    """Checks a flag is a Python or NumPy bool (no truthiness: ``'no'`` and ``None`` refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool, got {value!r}.")
    return bool(value)


def check_none_or_choice(name: str, value, allowed: Iterable) -> str | None:
    """Like `check_choice`, but also accepts None."""
    return None if value is None else check_choice(name, value, tuple(a for a in allowed if a))


def as_array(name: str, x) -> jax.Array:
    """``jnp.asarray(x)``, with a TypeError naming `name` for None, strings and other non-arrays."""
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"`{name}` must be an array, got {x!r}.")
    try:
        return jnp.asarray(x)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}.") from err


def as_inexact(
    name: str,
    x,
    *,
    allow_complex: bool = True,
    allow_bool: bool = False,
    min_ndim: int = 0,
    shape_hint: str = "(..., N)",
) -> jax.Array:
    """`x` as a floating (or complex) array; integers become the default float dtype.

    Args:
      name: the argument's name, for error messages.
      x: array-like.
      allow_complex: refuse complex dtypes when False.
      allow_bool: accept bool arrays (converted like integers) when True.
      min_ndim: the minimum number of axes; `shape_hint` describes the expected shape.
      shape_hint: the expected shape, as written in the error message.

    Raises:
      TypeError: `x` is not numeric (or is complex / bool where that is refused).
      ValueError: `x` has fewer than `min_ndim` axes.
    """
    x = as_array(name, x)
    if x.dtype == np.bool_:
        if not allow_bool:
            raise TypeError(f"`{name}` must be a numeric array, got dtype {x.dtype}.")
    elif not jnp.issubdtype(x.dtype, jnp.number):
        raise TypeError(f"`{name}` must be a numeric array, got dtype {x.dtype}.")
    if jnp.issubdtype(x.dtype, jnp.complexfloating) and not allow_complex:
        raise TypeError(f"`{name}` must be real, got dtype {x.dtype}.")
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    if x.ndim < min_ndim:
        raise ValueError(f"`{name}` must have shape {shape_hint}, got {x.shape}.")
    return x


def compute_dtype(*arrays_or_dtypes) -> np.dtype:
    """The real dtype computations run in: float64 if an input is 64-bit, else float32.

    bfloat16 and float16 inputs compute in float32 (JAX has no half-precision complex
    type); complex inputs count by their real part.
    """
    promoted = jnp.promote_types(jnp.result_type(*arrays_or_dtypes), jnp.float32)
    return np.dtype(jnp.finfo(promoted).dtype)


def concrete_value(x) -> np.ndarray | None:
    """The value of `x` as NumPy, or None when it is traced (value checks run only if known)."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_batch_shape(batch_shape, *, name: str = "batch_shape") -> tuple[int, ...]:
    """A batch shape as a tuple of non-negative ints (an int ``n`` means ``(n,)``)."""
    if isinstance(batch_shape, numbers.Integral) and not isinstance(batch_shape, bool):
        batch_shape = (batch_shape,)
    try:
        entries = tuple(batch_shape)
    except TypeError:
        raise TypeError(
            f"`{name}` must be an int or a sequence of ints, got {batch_shape!r}."
        ) from None
    for n in entries:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise (ValueError if isinstance(n, numbers.Integral) else TypeError)(
                f"`{name}` must be an int or a sequence of ints >= 0, got {batch_shape!r}."
            )
    return tuple(int(n) for n in entries)


#: The largest state size ``N`` for which hippox builds dense host matrices (transition
#: matrices, NPLR/diagonal decompositions): a dense ``(N, N)`` float64 matrix is 2 GiB at
#: this size and the eigendecompositions take ``O(N³)`` (minutes). Larger ``N`` is refused
#: with the cost in the message instead of a NumPy ``MemoryError`` that never names ``N``.
MAX_DENSE_N = 16384


def _format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_state_size(name: str, value, *, minimum: int = 1, even: bool = False) -> int:
    """`check_size`, and ``value <= MAX_DENSE_N`` (the cost of a dense host matrix)."""
    value = check_size(name, value, minimum=minimum, even=even)
    if value > MAX_DENSE_N:
        raise ValueError(
            f"`{name}` must be <= {MAX_DENSE_N} (hippox builds dense ({name}, {name}) float64 "
            f"matrices on the host: {_format_bytes(8.0 * value * value)} each and O({name}³) "
            f"work for the decompositions at this size), got {value}."
        )
    return value


def _describe(values: np.ndarray) -> str:
    """A short description of the offending entries of an array, for error messages."""
    flat = np.asarray(values).ravel()
    if flat.size <= 6:
        return repr(flat.tolist()) if flat.size != 1 else repr(flat[0].item())
    return f"an array of shape {np.shape(values)} with entries {flat[:6].tolist()} ..."


def check_step(name: str, dt, *, allow_bool: bool = True) -> jax.Array:
    """A real step-size array; when its value is known, every entry finite and > 0.

    A traced ``dt`` is checked only under `jax.experimental.checkify` (module docstring
    of ``hippox/_src/checks.py``).

    Raises:
      TypeError: ``dt`` is not a real numeric array.
      ValueError: a concrete ``dt`` with an entry that is <= 0, NaN or infinite.
    """
    dt = as_inexact(name, dt, allow_complex=False, allow_bool=allow_bool)
    values = concrete_value(dt)
    if values is None:
        checks.traced_positive_finite(name, dt)
    else:
        bad = ~(np.isfinite(values) & (values > 0))
        if np.any(bad):
            raise ValueError(
                f"`{name}` must be finite and > 0 elementwise, got {_describe(values[bad])} "
                f"(in {name} of shape {values.shape})."
            )
    return dt


def check_key(name: str, key, what: str) -> jax.Array:
    """A JAX PRNG key: a typed key (`jax.random.key`) or a raw ``uint32`` key
    (`jax.random.PRNGKey`); refuses None, ints and other arrays with a clear message."""
    require_key(name, key, what)
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if (
        isinstance(key, (jax.Array, np.ndarray))
        and key.dtype == np.uint32
        and key.ndim >= 1
        and key.shape[-1] == 2
    ):
        return key
    raise TypeError(
        f"`{name}` must be a jax.random key for {what} (e.g. `jax.random.key(0)`), got "
        f"{key!r}" + (f" of type {type(key).__name__}." if not hasattr(key, "shape") else ".")
    )


def check_no_positive_real(name: str, Lambda: jax.Array, what: str) -> None:
    """Refuses a concrete ``Lambda`` with ``Re(Lambda) > 0`` (an unstable mode)."""
    values = concrete_value(Lambda)
    if values is None:
        checks.traced_stable(name, Lambda)
        return
    # Rounding-level positive real parts (e.g. +1e-16 in a float64 NPLR spectrum whose
    # real part is 0) are not instabilities: the tolerance is 64 ulp of the largest mode.
    eps = np.finfo(np.result_type(values.dtype, np.float32)).eps
    tol = 64 * eps * float(np.abs(values).max(initial=0.0))
    if np.any(np.real(values) > tol):
        worst = np.real(values).max()
        raise ValueError(
            f"`{name}` must have Re({name}) <= 0 ({what}), got a mode with Re({name}) = {worst:g}."
        )
