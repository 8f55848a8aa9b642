"""Convolution kernels of discretised state space models.

A channel of a linear SSM, discretised with step ``dt`` as ``x_k = Ab x_{k-1} + Bb u_k``,
``y_k = C x_k + D u_k``, is the causal convolution ``y = K * u + D u`` with the kernel

    K_l = C Ab^l Bb,   l = 0 … L-1.

This module computes ``K`` two ways, and holds what the kernels share:

* `kernel_naive`: the reference, one matrix-vector product per step (``lax.scan``),
  for any dense ``(N, N)`` or diagonal ``Ab``.
* `kernel_diag` (S4D): diagonal ``A = diag(Lambda)``; ``K_l = Σ_m C_m Bb_m Ab_m^l`` is a
  Vandermonde product, evaluated in blocks (``Ab^(qc + r) = Ab^(qc) Ab^r``) so that only
  ``O(H N (L/c + c))`` complex powers are formed and the contraction is a batched matmul.

The third, `hippox.kernel_dplr` (S4: diagonal plus low rank ``A = diag(Lambda) - Pᵀ
conj(P)``, a Cauchy sum corrected by the Woodbury identity at the roots of unity), lives
with the rest of the DPLR system in ``hippox/_src/dplr.py``; it follows the same
conventions and memory budget.

Conventions (shared with `hippox.causal_conv` and the step mode):

* Shapes: ``Lambda``, ``B``, ``C``: ``(H, M)`` (or ``(M,)``, broadcast), ``dt``: ``(H,)``.
  Any leading batch shape that broadcasts is accepted; kernels have shape ``(..., H, L)``.
* ``conj_sym=True`` (default): the ``M = N/2`` arrays are one half of a conjugate-closed
  set of ``N`` modes (``Im(Lambda) <= 0`` by convention); the system is the closed one and
  its real kernel is ``Re`` of the closed system's kernel. For a diagonal system the halves
  do not interact, so this is ``K_l = 2 Re(C Ab^l Bb)`` over the ``M`` stored modes.
  ``conj_sym=False``: the arrays hold all ``M = N`` modes and ``K_l = Re(C Ab^l Bb)`` (for
  a conjugate-closed set ``Re`` drops only rounding error).
* dtypes: float32/complex64 inputs compute in complex64 and return float32; float64 or
  complex128 inputs compute in complex128 and return float64. Half-precision inputs
  compute in complex64 (JAX has no half-precision complex type).

Memory: neither `kernel_diag` nor `kernel_dplr` materialises an ``(H, N, L)`` array for
large problems. Work is split into blocks along the length axis (``chunk_size``) and, where
the blocks of all channels together would exceed the memory budget, the channels are
processed in groups with ``lax.map``. The budget is in **bytes** of complex intermediates
(one complex64 number is 8 bytes, one complex128 number 16):

* ``memory_budget=None`` (default): `memory_budget` of the default device, a pure function
  of that device. On a device that reports memory statistics (GPU, TPU:
  ``device.memory_stats()`` with ``bytes_limit`` and ``bytes_in_use``) it is
  `DEVICE_MEMORY_FRACTION` of the free memory, rounded down to a power of two (so small
  changes in the memory in use do not change the budget and cause a recompilation); on the
  CPU, or a device without statistics, it is `MEMORY_BUDGET` (32 MiB: ``2**22`` complex64
  numbers, the fixed budget of earlier versions).
* ``memory_budget=<int>``: that many bytes (an explicit override, e.g. to use more of a
  GPU's memory, or less on a small one). The budget is a static value: each distinct
  budget compiles its own kernel.

Budgets only change how the channels are grouped, never the values (up to the order of
floating-point sums, which the grouping does not change either).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from hippox._src import _validate
from hippox._src.discretize import DIAG_METHODS, DiagMethod, discretize_diag

#: Bytes of complex intermediates one block of work may hold (summed over the channels, or
#: frequency nodes, processed together) on the CPU or a device without memory statistics:
#: 32 MiB, ``2**22`` complex64 numbers (module docstring).
MEMORY_BUDGET = 32 << 20

#: Fraction of a device's free memory (``bytes_limit - bytes_in_use``) that `memory_budget`
#: grants one kernel's intermediates on a device with memory statistics: a quarter leaves
#: room for the kernel's inputs and outputs, XLA's own buffers and the rest of the model.
DEVICE_MEMORY_FRACTION = 0.25

#: Smallest budget `memory_budget` returns for a device (1 MiB): below it grouping would
#: serialise the work into tiny steps without saving memory that matters.
MIN_MEMORY_BUDGET = 1 << 20


def memory_budget(device: jax.Device | None = None) -> int:
    """The memory budget, in bytes, of the kernels' channel grouping on ``device``.

    A pure function of the device: with memory statistics (``device.memory_stats()``
    reporting ``bytes_limit`` and ``bytes_in_use``, as GPUs and TPUs do) it is
    ``DEVICE_MEMORY_FRACTION * (bytes_limit - bytes_in_use)`` rounded down to a power of
    two and at least ``MIN_MEMORY_BUDGET``; otherwise (the CPU) `MEMORY_BUDGET`, 32 MiB.
    `kernel_diag` and `hippox.kernel_dplr` use it when their ``memory_budget`` is None.

    Args:
      device: a ``jax.Device`` (or any object with a ``memory_stats()`` method), or None
        for ``jax.devices()[0]`` (the default backend's first device).

    Returns:
      The budget in bytes, an int.

    Examples:
      >>> import jax
      >>> import hippox
      >>> cpu = jax.devices("cpu")[0]
      >>> hippox.memory_budget(cpu) == 32 * 2**20  # no memory statistics on the CPU
      True
      >>> class FakeGPU:
      ...     def memory_stats(self):
      ...         return {"bytes_limit": 16 * 2**30, "bytes_in_use": 2**30}
      >>> hippox.memory_budget(FakeGPU()) == 2**31  # a quarter of 15 GiB, down to 2 GiB
      True
    """
    if device is None:
        device = jax.devices()[0]
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - backends without statistics raise various errors
        stats = None
    if not stats or "bytes_limit" not in stats:
        return MEMORY_BUDGET
    free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    budget = int(DEVICE_MEMORY_FRACTION * max(free, 0))
    if budget < MIN_MEMORY_BUDGET:
        return MIN_MEMORY_BUDGET
    return 1 << (budget.bit_length() - 1)


def check_memory_budget(memory_budget_: int | None) -> int:
    """A validated ``memory_budget`` in bytes (None: `memory_budget` of the default device).

    Raises:
      TypeError / ValueError: not an int >= 1 (naming ``memory_budget``).
    """
    if memory_budget_ is None:
        return memory_budget()
    return _validate.check_size("memory_budget", memory_budget_)


def budget_elements(budget_bytes: int, dtype) -> int:
    """How many numbers of ``dtype`` (e.g. complex64: 8 bytes) fit a budget in bytes."""
    return max(1, budget_bytes // jnp.dtype(dtype).itemsize)


# --------------------------------------------------------------------------- helpers


def broadcast_batch(shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    """The broadcast of the batch (channel) shapes of named arguments, or a ValueError."""
    try:
        return tuple(jnp.broadcast_shapes(*shapes.values()))
    except ValueError as err:
        desc = ", ".join(f"`{k}` {v}" for k, v in shapes.items())
        raise ValueError(
            f"the batch (channel) shapes of the arguments must broadcast together, got {desc}."
        ) from err


def check_modes(name: str, x: jax.Array, M: int, what: str = "(..., M)") -> None:
    """Checks that `x` has the ``M`` modes of ``Lambda`` on its last axis."""
    if x.ndim < 1 or x.shape[-1] != M:
        raise ValueError(
            f"`{name}` must have shape {what} with M={M} (from Lambda), got {x.shape}."
        )


def check_chunk_size(chunk_size) -> int | None:
    """None, or a validated ``chunk_size`` (an int >= 1)."""
    return None if chunk_size is None else _validate.check_size("chunk_size", chunk_size)


def _map_rows(fn: Callable, args: tuple[jax.Array, ...], per_row: int, budget: int) -> jax.Array:
    """``fn(*args)`` with the leading (row) axis processed in groups within ``budget``.

    ``per_row`` is the number of complex intermediates one row needs, ``budget`` the
    number of complex intermediates allowed (`budget_elements`). Rows are padded with
    copies of row 0 (so padded values stay finite and gradients NaN-free).
    """
    rows = args[0].shape[0]
    group = max(1, budget // max(per_row, 1))
    if group >= rows:
        return fn(*args)
    n = -(-rows // group)
    pad = n * group - rows

    def split(a):
        if pad:
            a = jnp.concatenate([a, jnp.broadcast_to(a[:1], (pad, *a.shape[1:]))], axis=0)
        return a.reshape(n, group, *a.shape[1:])

    out = jax.lax.map(lambda xs: fn(*xs), tuple(split(a) for a in args))
    return out.reshape(n * group, *out.shape[2:])[:rows]


def _real_part(K: jax.Array, conj_sym: bool) -> jax.Array:
    return 2.0 * K.real if conj_sym else K.real


# --------------------------------------------------------------------------- naive


def kernel_naive(
    Ab: ArrayLike,
    Bb: ArrayLike,
    C: ArrayLike,
    L: int,
    *,
    diagonal: bool | None = None,
) -> jax.Array:
    """Reference kernel ``K_l = C Ab^l Bb`` for ``l < L``, one step at a time.

    A ``lax.scan`` of ``L`` matrix-vector (or elementwise, for diagonal ``Ab``) products:
    ``O(L N^2)`` work per channel for dense ``Ab``, ``O(L N)`` for diagonal. Meant as the
    slow, obviously-correct reference for `kernel_diag` and `kernel_dplr`.

    Args:
      Ab: discrete state matrix, dense ``(..., N, N)`` or diagonal ``(..., N)``.
      Bb: ``(..., N)`` discrete input vector.
      C: ``(..., N)`` output vector.
      L: kernel length, an int >= 1.
      diagonal: whether ``Ab`` holds a diagonal. ``None`` (default) infers it: ``Ab`` is
        dense when it has one more axis than ``Bb`` and its last two axes are equal,
        diagonal otherwise. Pass it explicitly when the shapes are ambiguous (e.g. a
        diagonal ``(N, N)`` batch with a shared ``Bb`` of shape ``(N,)``).

    Returns:
      ``(..., L)`` kernel (the broadcast batch shape of the arguments), in the dtype of
      ``Ab @ Bb`` (complex when any input is complex; no real part is taken).

    Raises:
      ValueError: if the shapes do not match or ``L < 1``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> K = hippox.kernel_naive(jnp.array([0.5]), jnp.array([1.0]), jnp.array([2.0]), 4)
      >>> [float(k) for k in K]
      [2.0, 1.0, 0.5, 0.25]
    """
    L = _validate.check_size("L", L)
    Ab, Bb, C = (
        _validate.as_inexact(name, x, allow_bool=True)
        for name, x in (("Ab", Ab), ("Bb", Bb), ("C", C))
    )
    if Bb.ndim < 1:
        raise ValueError(f"`Bb` must have shape (..., N), got {Bb.shape}.")
    N = Bb.shape[-1]
    if diagonal is not None:
        diagonal = _validate.check_bool("diagonal", diagonal)
    else:
        diagonal = not (Ab.ndim == Bb.ndim + 1 and Ab.ndim >= 2 and Ab.shape[-1] == Ab.shape[-2])
    if diagonal:
        if Ab.ndim < 1 or Ab.shape[-1] != N:
            raise ValueError(
                f"`Ab` (diagonal) must have shape (..., N) with N={N}, got {Ab.shape}."
            )
        shapes = {"Ab": Ab.shape[:-1], "Bb": Bb.shape[:-1], "C": C.shape[:-1]}
    else:
        if Ab.ndim < 2 or Ab.shape[-2:] != (N, N):
            raise ValueError(
                f"`Ab` (dense) must have shape (..., N, N) with N={N}, got {Ab.shape}."
            )
        shapes = {"Ab": Ab.shape[:-2], "Bb": Bb.shape[:-1], "C": C.shape[:-1]}
    if C.ndim < 1 or C.shape[-1] != N:
        raise ValueError(f"`C` must have shape (..., N) with N={N}, got {C.shape}.")
    batch = broadcast_batch(shapes)
    return _kernel_naive(Ab, Bb, C, L=L, diagonal=bool(diagonal), batch=batch)


@functools.partial(jax.jit, static_argnames=("L", "diagonal", "batch"))
def _kernel_naive(Ab, Bb, C, *, L, diagonal, batch):
    N = Bb.shape[-1]
    dtype = jnp.result_type(Ab, Bb, C)
    x0 = jnp.broadcast_to(Bb, (*batch, N)).astype(dtype)
    Ab, C = Ab.astype(dtype), C.astype(dtype)

    def step(x, _):
        y = jnp.sum(C * x, axis=-1)
        x = Ab * x if diagonal else jnp.einsum("...nm,...m->...n", Ab, x)
        return x, y

    _, ys = jax.lax.scan(step, x0, None, length=L)
    return jnp.moveaxis(ys, 0, -1)


# --------------------------------------------------------------------------- diagonal


def _vandermonde(
    W: jax.Array, logA: jax.Array, L: int, block: int | None, budget: int
) -> jax.Array:
    """``out[h, s, l] = Σ_m W[h, s, m] exp(l logA[h, m])`` for l < L, blockwise.

    ``l = q c + r`` with block length ``c``: ``exp(l logA) = exp(q c logA) exp(r logA)``, so
    only ``(L/c + c)`` powers per mode are formed and the sum over modes is a batched matmul.
    """
    rows, S, M = W.shape
    c = block if block is not None else 1 << max(0, math.ceil(math.log2(math.sqrt(L))))
    c = min(c, L)
    nq = -(-L // c)
    rdtype = jnp.finfo(logA.dtype).dtype

    def fn(W, logA):
        r = jnp.arange(c, dtype=rdtype)
        q = jnp.arange(nq, dtype=rdtype) * c
        base = jnp.exp(logA[..., None] * r)  # (h, M, c)
        starts = jnp.exp(logA[..., None] * q)  # (h, M, nq)
        coef = W[..., None] * starts[:, None]  # (h, S, M, nq)
        out = jnp.einsum("hsmq,hmr->hsqr", coef, base)
        return out.reshape(out.shape[0], S, nq * c)[..., :L]

    per_row = M * (c + nq * (S + 1)) + S * nq * c
    return _map_rows(fn, (W, logA), per_row, budget)


def kernel_diag(
    Lambda: ArrayLike,
    B: ArrayLike,
    C: ArrayLike,
    dt: ArrayLike,
    L: int,
    *,
    method: DiagMethod = "zoh",
    conj_sym: bool = True,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
) -> jax.Array:
    """S4D convolution kernel of a diagonal SSM (a Vandermonde product).

    ``K_l = 2 Re(Σ_m C_m Bb_m Ab_m^l)`` (``conj_sym=True``) or ``Re(...)``
    (``conj_sym=False``) for ``l < L``, with ``Ab, Bb`` from `hippox.discretize_diag`.

    ``method='dss'`` is zero-order hold with ``Bb`` divided by ``Ab^L - 1`` (the DSS-exp
    normalisation). It is evaluated stably for modes with ``Re(Lambda) > 0`` too: for those
    the term is rewritten with ``Lambda' = -Lambda`` (``Re <= 0``) as
    ``-Σ C Bb' Ab'^(L-1-l)``, so nothing overflows however large ``Re(dt Lambda) L`` is.

    Args:
      Lambda: ``(..., M)`` complex (or real) diagonal of ``A``; ``Re(Lambda) < 0`` for a
        stable system (any sign allowed with ``dss``).
      B: ``(..., M)`` input vector.
      C: ``(..., M)`` output vector.
      dt: ``(...)`` positive real step sizes, one per channel (e.g. ``(H,)``).
      L: kernel length, an int >= 1.
      method: ``zoh``, ``bilinear`` or ``dss``.
      conj_sym: whether the modes are one half of conjugate pairs (output ``2 Re``) or the
        full set (output ``Re``).
      chunk_size: length of the blocks the length axis is split into (``None``: the power
        of two nearest above ``sqrt(L)``, which minimises the powers formed; ``>= L``: one
        block, i.e. the plain ``(H, M, L)`` Vandermonde matrix). Channels are processed in
        groups when the blocks would exceed the memory budget.
      memory_budget: the budget in bytes of complex intermediates, or None for
        `hippox.memory_budget` of the default device (module docstring). It changes the
        grouping only, never the values.

    Returns:
      ``(..., L)`` real kernel (the broadcast batch shape of ``Lambda, B, C, dt``; ``(H, L)``
      for the usual shapes), float32 or float64 (module docstring).

    Raises:
      ValueError: for bad shapes, ``L < 1``, an unknown ``method``, a bad ``chunk_size``,
        a concrete ``dt`` that is not finite and > 0, or a concrete ``Lambda`` with
        ``Re(Lambda) > 0`` (except with ``dss``).
      TypeError: for a complex ``dt``, non-numeric arrays or a non-bool ``conj_sym``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> Lambda = jnp.array([[-0.5 - 1.0j, -0.5 - 3.0j]], jnp.complex64)  # H = 1, M = 2
      >>> B = jnp.ones((1, 2), jnp.complex64)
      >>> C = jnp.array([[1.0 + 0.5j, 0.3 - 0.2j]], jnp.complex64)
      >>> K = hippox.kernel_diag(Lambda, B, C, jnp.array([0.1], jnp.float32), 8)
      >>> K.shape, K.dtype
      ((1, 8), dtype('float32'))
    """
    _validate.check_choice("method", method, DIAG_METHODS)
    L = _validate.check_size("L", L)
    conj_sym = _validate.check_bool("conj_sym", conj_sym)
    chunk_size = check_chunk_size(chunk_size)
    budget = check_memory_budget(memory_budget)
    Lam, B, C = (
        _validate.as_inexact(name, x, allow_bool=True)
        for name, x in (("Lambda", Lambda), ("B", B), ("C", C))
    )
    dt = _validate.check_step("dt", dt)
    if Lam.ndim < 1:
        raise ValueError(f"`Lambda` must have shape (..., M), got {Lam.shape}.")
    if method != "dss":
        _validate.check_no_positive_real(
            "Lambda",
            Lam,
            f"method={method!r} grows like exp(Re(dt Lambda) L); only 'dss' handles unstable modes",
        )
    M = Lam.shape[-1]
    check_modes("B", B, M)
    check_modes("C", C, M)
    batch = broadcast_batch(
        {"Lambda": Lam.shape[:-1], "B": B.shape[:-1], "C": C.shape[:-1], "dt": dt.shape}
    )
    return _kernel_diag(
        Lam,
        B,
        C,
        dt,
        L=L,
        method=method,
        conj_sym=conj_sym,
        chunk_size=chunk_size,
        batch=batch,
        budget=budget,
    )


@functools.partial(
    jax.jit, static_argnames=("L", "method", "conj_sym", "chunk_size", "batch", "budget")
)
def _kernel_diag(Lam, B, C, dt, *, L, method, conj_sym, chunk_size, batch, budget):
    M = Lam.shape[-1]
    rtype = _validate.compute_dtype(Lam, B, C, dt)
    ctype = _validate.complex_dtype(rtype)
    rows = math.prod(batch)
    Lam, B, C = (
        jnp.broadcast_to(x.astype(ctype), (*batch, M)).reshape(rows, M) for x in (Lam, B, C)
    )
    dt = jnp.broadcast_to(dt.astype(rtype), batch).reshape(rows)

    if method == "dss":
        pos = Lam.real > 0
        Lam_s = jnp.where(pos, -Lam, Lam)  # Re <= 0 for every mode
        _, Bb = discretize_diag(Lam_s, B, dt, method="dss", L=L)
        WB = C * Bb
        zero = jnp.zeros_like(WB)
        W = jnp.stack([jnp.where(pos, zero, WB), jnp.where(pos, -WB, zero)], axis=1)
        logA = dt[:, None] * Lam_s
    else:
        _, Bb = discretize_diag(Lam, B, dt, method=method)
        W = (C * Bb)[:, None]
        x = dt[:, None] * Lam
        logA = x if method == "zoh" else jnp.log1p(x / 2) - jnp.log1p(-x / 2)
    K = _vandermonde(W, logA, L, chunk_size, budget_elements(budget, ctype))  # (rows, S, L)
    K = K[:, 0] + K[:, 1, ::-1] if method == "dss" else K[:, 0]
    return _real_part(K, conj_sym).astype(rtype).reshape(*batch, L)
