"""The FFT-free block form of a diagonal SSM: small causal matmuls plus a state recurrence.

For a diagonal SSM (S4D; S5 after its input projection) the convolution kernel never
needs to exist at full length. Split the sequence into blocks of ``T`` positions; with
``x_l = Ab x_{l-1} + Bb u_l``, ``y_l = Re(C x_l) + D u_l`` and the state ``x_{c}`` at
the end of block ``c``::

    inside block c:  y[c, t] = Σ_{s<=t} K[t - s] u[c, s]            (T × T Toeplitz matmul)
                             + Re(Σ_m C_m Ab_m^{t+1} x_{c-1, m})    (state from earlier blocks)
    across blocks:   x_c = Ab^T x_{c-1} + Σ_s Ab^{T-1-s} Bb u[c, s]  (an L/T-step recurrence)

with ``K[l] = Re(Σ_m C_m Ab_m^l Bb_m)`` for ``l < T`` only. The work is
``O(L (T + M))`` per channel and sequence, almost all of it matrix products (what
BLAS, tensor cores and TPU matrix units do best), the memory ``O(L + T² + T M)`` per
channel, and there is no FFT. The result equals the FFT convolution to rounding.

This is the chunked "state passing" form of structured SSMs (as in Mamba-2's SSD for
scalar-times-identity matrices; here the state matrix is diagonal).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from hippox._src import _validate
from hippox._src.step import (
    DiagStepParams,
    cast_state_and_input,
    check_params,
    init_state,
    state_and_input,
)

#: Block length used when ``block=None``: a multiple of 8 that keeps the Toeplitz
#: matmul efficient on every backend without making it dominate the cost.
DEFAULT_BLOCK = 64

#: The ``implementation`` choices of the diagonal SSMs (`diag_implementation`): ``auto``
#: picks one of the other two by size and backend.
DIAG_IMPLEMENTATIONS: tuple[str, ...] = ("auto", "fft", "block")

#: Shortest sequence for which ``implementation='auto'`` picks the block form when a state
#: is carried in or returned (`diag_implementation`).
BLOCK_MIN_LENGTH = 128

#: Backends on which ``implementation='auto'`` picks the block form for a zero-state
#: forward too (from ``BLOCK_MIN_LENGTH`` on): TPUs, whose FFTs are slow next to their
#: matrix units (`diag_implementation`).
BLOCK_BACKENDS: tuple[str, ...] = ("tpu",)


def diag_implementation(
    L: int,
    M: int,
    *,
    state: bool = False,
    backend: str | None = None,
    implementation: str = "auto",
) -> str:
    """How a diagonal SSM is evaluated for ``implementation``: ``'fft'`` or ``'block'``.

    ``'fft'`` is the kernel plus an FFT convolution (`hippox.kernel_diag`,
    `hippox.causal_conv`), with a carried or returned state as Vandermonde contractions
    (an ``(H, M, L)`` matrix of powers); ``'block'`` is the FFT-free block form
    (`block_scan_diag`). Both give the same values to rounding; they differ in speed and
    memory. The rule of ``'auto'``:

    - a state carried in or returned (``state=True``; `hippox.forward_chunk_diag`
      always): ``'block'`` for ``L >= BLOCK_MIN_LENGTH`` (128), on every backend;
    - a zero-state forward: ``'block'`` for ``L >= BLOCK_MIN_LENGTH`` on TPU
      (`BLOCK_BACKENDS`), ``'fft'`` on CPU and GPU;
    - ``'fft'`` for shorter sequences.

    Measured on the 2-core CPU (S4D layer, B 4, H 64, N 64, float32, jit, minimum of 15
    interleaved runs at load 15-20, so ±30 % or more; ``benchmarks/RESULTS.md``): with a
    carried and returned state the block form was 1.2× (L 32), 0.9× (L 64), 3.9×
    (L 128), 7.8× (L 256), 17.7× (L 1024) and 9.4× (L 4096) as fast as the FFT path,
    whose state contractions dominate; a zero-state forward was 0.3-0.4× (L 128),
    0.2-1.0× (L 256-512) and 0.8-1.3× (L 1024-4096), forward + backward 0.3-0.4×
    (L 256) and 0.6-1.6× (L 1024-4096): no consistent gain on the CPU, so the FFT stays
    there. GPU and TPU were not measured: the GPU follows the CPU (its FFTs are fast),
    the TPU takes the block form (matrix products are what its matrix units do best, and
    its FFTs are slow).

    Args:
      L: sequence length.
      M: modes per channel (kept for rules that depend on it; the current rule does not).
      state: whether a state is carried in or returned.
      backend: ``'cpu'``, ``'gpu'``, ``'tpu'``, ... (None: ``jax.default_backend()``).
      implementation: ``'auto'``, ``'fft'`` or ``'block'``; the last two are returned
        as given.

    Returns:
      ``'fft'`` or ``'block'``.

    Raises:
      ValueError: an unknown ``implementation``, or ``L``/``M`` not a positive int.

    Examples:
      >>> import hippox
      >>> hippox.diag_implementation(4096, 32, state=True, backend="cpu")
      'block'
      >>> hippox.diag_implementation(4096, 32, backend="cpu")
      'fft'
      >>> hippox.diag_implementation(4096, 32, backend="tpu")
      'block'
    """
    _validate.check_choice("implementation", implementation, DIAG_IMPLEMENTATIONS)
    L = _validate.check_size("L", L)
    _validate.check_size("M", M)
    state = _validate.check_bool("state", state)
    if implementation != "auto":
        return implementation
    if backend is None:
        backend = jax.default_backend()
    if L < BLOCK_MIN_LENGTH:
        return "fft"
    return "block" if state or backend in BLOCK_BACKENDS else "fft"


def block_length(L: int) -> int:
    """The block length ``T`` the layers use for a sequence of length ``L``."""
    return min(L, DEFAULT_BLOCK)


def block_scan_diag(
    params: DiagStepParams,
    u: ArrayLike,
    x0: ArrayLike | None = None,
    *,
    block: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Runs a diagonal SSM over ``u`` in blocks, without an FFT (module docstring).

    Same contract as `hippox.forward_chunk_diag`: the output
    ``y_l = Re(Σ_{j<=l} C Ab^{l-j} Bb u_j + C Ab^{l+1} x0) + D u_l`` and the state after
    the last position, ``x_L = Ab^L x0 + Σ_l Ab^{L-1-l} Bb u_l``.

    Args:
      params: `hippox.DiagStepParams` (``Ab``, ``Bb``, ``C`` ``(H, M)`` complex with
        the output factor folded into ``C``; ``D`` ``(H,)``).
      u: ``(..., H, L)`` real input.
      x0: ``(..., H, M)`` complex initial state, or None (zeros).
      block: block length ``T`` (None: ``min(L, DEFAULT_BLOCK)``).

    Returns:
      ``(y, x_L)``: ``(..., H, L)`` real output and the ``(..., H, M)`` complex final state.

    Raises:
      TypeError: ``params`` is not `DiagStepParams`, or a complex ``u``.
      ValueError: shapes that do not match ``params``, or a bad ``block``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> p = hippox.diag_step_params(-jnp.ones(3) + 0.5j, jnp.ones(3), jnp.ones(3), jnp.ones(2))
      >>> u = jnp.ones((4, 2, 100))
      >>> y, x = hippox.block_scan_diag(p, u, block=16)
      >>> y_fft, x_fft = hippox.forward_chunk_diag(p, u)
      >>> bool(jnp.allclose(y, y_fft, atol=1e-4)), bool(jnp.allclose(x, x_fft, atol=1e-4))
      (True, True)
    """
    check_params("params", params, DiagStepParams, "diag_step_params")
    x, u = state_and_input(params, init_state(params) if x0 is None else x0, u, 2)
    L = u.shape[-1]
    if L < 1:
        raise ValueError(f"`u` must have length L >= 1 on its last axis, got {u.shape}.")
    T = min(L, DEFAULT_BLOCK) if block is None else _validate.check_size("block", block)
    x0, u = cast_state_and_input(params, None if x0 is None else x, u)
    Ab, Bb, C, D = params
    y, x = diag_block_forward(Ab, Bb, C[None], D[None], u, x0, None, T=min(T, L), need_state=True)
    return y[..., 0, :, :], x


#: Matmul precision of the block form: full float32 (or float64) products on every backend
#: (GPU and TPU would otherwise use TF32 or bfloat16 passes for float32 matmuls, far from
#: the FFT path's rounding).
_EXACT = jax.lax.Precision.HIGHEST


def _first_bad(u: jax.Array) -> jax.Array:
    """Index of the first non-finite sample along the last axis (its length if none)."""
    bad = ~jnp.isfinite(u)
    return jnp.where(jnp.any(bad, axis=-1), jnp.argmax(bad, axis=-1), u.shape[-1])


@functools.partial(jax.jit, static_argnames=("T", "need_state"))
def diag_block_forward(Ab, Bb, C, D, u, x0, lengths, *, T: int, need_state: bool):
    """The block form with several output rows, padded lengths and the non-finite policy.

    The core of `block_scan_diag` and of the S4D layer's ``implementation='block'`` (no checks).

    Args:
      Ab, Bb: ``(H, M)`` complex discrete system.
      C: ``(c, H, M)`` complex output rows (output factor folded in).
      D: ``(c, H)`` real skip terms, or None.
      u: ``(..., H, L)`` real input (padding already zeroed), in the output dtype.
      x0: ``(..., H, M)`` complex initial state, or None (zeros).
      lengths: ``(...)`` int valid lengths (the state is taken after ``lengths`` steps),
        or None (after all L).
      T: block length, ``1 <= T <= L``.
      need_state: whether to return the state.

    Returns:
      ``(y, x)``: ``(..., c, H, L)`` real output and the ``(..., H, M)`` state (None
      unless ``need_state``). Non-finite inputs follow `hippox.causal_conv`'s policy: the
      outputs of a channel from its first non-finite sample on are NaN, the earlier ones
      are those of the finite prefix, and the state is NaN when a non-finite sample lies
      within the ``lengths`` steps it has seen.
    """
    ctype, rtype = Ab.dtype, u.dtype
    H, M = Ab.shape
    bshape = jnp.broadcast_shapes(u.shape[:-2], () if x0 is None else x0.shape[:-2])
    L = u.shape[-1]
    u = jnp.broadcast_to(u, (*bshape, H, L))
    first = _first_bad(u)  # (..., H)
    u = jnp.where(jnp.isfinite(u), u, jnp.zeros((), rtype))
    nc = -(-L // T)
    pad = nc * T - L
    ub = jnp.pad(u, [(0, 0)] * (u.ndim - 1) + [(0, pad)]).reshape(*bshape, H, nc, T)

    t = jnp.arange(T)
    powers = jnp.power(Ab[..., None], t)  # (H, M, T): Ab^t
    K = jnp.real(jnp.einsum("chm,hmt->cht", C * Bb, powers, precision=_EXACT)).astype(rtype)
    lag = t[:, None] - t[None, :]
    toeplitz = jnp.where(lag >= 0, K[..., jnp.clip(lag, 0, T - 1)], 0.0)  # (c, H, T, T)
    y = jnp.einsum("chts,...hns->...chnt", toeplitz, ub, precision=_EXACT)

    # Block-end drives s_n = Σ_s Ab^{T-1-s} Bb u[n, s], then x_n = Ab^T x_{n-1} + s_n.
    # The complex products with the real input run as one real matmul on [Re; Im].
    W = Bb[..., None] * powers[..., ::-1]  # (H, M, T)
    W2 = jnp.concatenate([W.real, W.imag], axis=-2).astype(rtype)  # (H, 2M, T)
    d2 = jnp.moveaxis(
        jnp.einsum("hks,...hns->...nhk", W2, ub, precision=_EXACT), -3, 0
    )  # (nc, ..., H, 2M)
    drive = jax.lax.complex(d2[..., :M], d2[..., M:]).astype(ctype)
    AT = Ab * powers[..., -1]  # Ab^T
    start = jnp.zeros((H, M), ctype) if x0 is None else x0
    start = jnp.broadcast_to(start, drive.shape[1:])  # (*batch, H, M)

    def body(x, s):
        x = AT * x + s
        return x, x

    _, ends = jax.lax.scan(body, start, drive)  # (nc, *batch, H, M)
    # The state before block n: x0 for n = 0, else the end state of block n - 1.
    starts = jnp.concatenate([start[None], ends], axis=0)  # (nc + 1, *batch, H, M)
    V = C[..., None] * (Ab[..., None] * powers)  # (c, H, M, T): C Ab^{t+1}
    # Re(V x) = Re V Re x - Im V Im x: one real matmul over the stacked 2M.
    V2 = jnp.concatenate([V.real, -V.imag], axis=-2).astype(rtype)  # (c, H, 2M, T)
    x2 = jnp.concatenate([starts[:-1].real, starts[:-1].imag], axis=-1).astype(rtype)
    y = y + jnp.einsum("chkt,n...hk->...chnt", V2, x2, precision=_EXACT)
    y = y.reshape(*bshape, *C.shape[:-2], H, nc * T)[..., :L]
    if D is not None:
        y = y + D[..., None] * u[..., None, :, :]
    poisoned = jnp.arange(L) >= first[..., None, :, None]
    y = jnp.where(poisoned, jnp.array(jnp.nan, rtype), y)
    if not need_state:
        return y, None

    if lengths is None and pad == 0:
        x = ends[-1]
        n = L
    else:  # x_n = Ab^r x_(before block q) + Σ_{s<r} Ab^{r-1-s} Bb u[q, s], n = q T + r
        n = jnp.full(bshape, L, jnp.int32) if lengths is None else lengths
        q, r = n // T, n % T
        x_q = jnp.take_along_axis(jnp.moveaxis(starts, 0, -3), q[..., None, None, None], axis=-3)[
            ..., 0, :, :
        ]
        u_q = jnp.take_along_axis(ub, jnp.minimum(q, nc - 1)[..., None, None, None], axis=-2)[
            ..., 0, :
        ]  # (..., H, T); zero weight where q = nc (then r = 0)
        by_t = jnp.moveaxis(powers, -1, 0)  # (T, H, M)
        live = t < r[..., None]  # (..., T)
        P = by_t[jnp.clip(r[..., None] - 1 - t, 0, T - 1)]  # (..., T, H, M): Ab^{r-1-s}
        u_q = jnp.where(live[..., None, :], u_q, jnp.zeros((), rtype))
        tail = Bb * jnp.einsum("...shm,...hs->...hm", P, u_q.astype(ctype), precision=_EXACT)
        x = by_t[r] * x_q + tail
    bad_state = first < jnp.asarray(n)[..., None]  # (..., H)
    x = jnp.where(bad_state[..., None], jnp.array(jnp.nan, ctype), x)
    return y, x
