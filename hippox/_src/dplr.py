"""The diagonal-plus-low-rank (DPLR, S4) system: its matrix, its kernel and S4's ``C̃``.

Conventions (shared by `kernel_dplr`, `dplr_c_tilde`, `dplr_c_from_tilde` and the DPLR
step mode of ``hippox/_src/step.py``):

* State matrix: ``A = diag(Lambda) - Pᵀ conj(P)``, i.e. ``A[n, m] = Lambda[n] δ_nm -
  Σ_r P[r, n] conj(P[r, m])`` (`dplr_matrix`), on the conjugate-closed mode set.
* Shapes: ``Lambda``, ``B``, ``C``: ``(H, M)`` (or ``(M,)``, broadcast), ``dt``: ``(H,)``,
  ``P``: ``(rank, H, M)`` (or ``(rank, M)``): the rank axis first. The kernel functions
  accept any leading batch shape that broadcasts; kernels have shape ``(..., H, L)``.
* ``conj_sym=True`` (default): the ``M = N/2`` arrays are one half of a conjugate-closed
  set of ``N`` modes (``Im(Lambda) <= 0`` by convention): ``Lambda_full = [Lambda,
  conj(Lambda)]``, ``P_full = [P, conj(P)]``, ``B_full = [B, conj(B)]``, ``C_full = [C,
  conj(C)]`` (``2M`` modes, `closed_modes`). The low-rank term couples the two halves,
  exactly as in S4, and the half system ``diag(Lambda) - Pᵀ conj(P)`` alone is *not*
  used. The closed system's state stays conjugate-symmetric, so its kernel is real and
  its output is ``2 Re(C x)`` for the first-half state ``x``. ``conj_sym=False``: the
  arrays hold all ``M = N`` modes and ``K_l = Re(C Ab^l Bb)``.
* Real NPLR operators: for ``Lambda, P, B, V = hippox.nplr("legs", N)`` and ``A, b =
  hippox.transition("legs", N)`` the closed system is ``V_full* A V_full`` with the
  unitary ``V_full = [V, conj(V)]``: a real output row ``c`` ``(N,)`` maps to ``C = c V``
  ``(N/2,)``, and the S4 kernel reproduces the real system's bilinear kernel
  ``c Ab^l Bb`` exactly.
* Discretisation: bilinear, ``Ab = (I - dt/2 A)^{-1} (I + dt/2 A)``, ``Bb = (I - dt/2
  A)^{-1} dt B``.
* dtypes: float32/complex64 inputs compute in complex64 and return float32; float64 or
  complex128 inputs compute in complex128 and return float64. Half-precision inputs
  compute in complex64 (JAX has no half-precision complex type).

Memory: `kernel_dplr` never forms an ``M × M`` matrix nor an ``(H, M, L)`` array; the
frequency nodes are evaluated in groups within the budget of ``hippox/_src/kernels.py``
(``kernels.MEMORY_BUDGET``). `dplr_c_tilde` and `dplr_c_from_tilde` form the dense
matrix (``O(M³ log L)`` per channel): they are meant for initialisation.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from hippox._src import _validate, kernels
from hippox._src.parameterization import conj_closed

# --------------------------------------------------------------------------- the system


def dplr_matrix(Lambda: ArrayLike, P: ArrayLike) -> jax.Array:
    """The dense DPLR state matrix ``A = diag(Lambda) - Pᵀ conj(P)`` (traceable).

    Args:
      Lambda: ``(..., M)`` complex diagonal.
      P: ``(rank, ..., M)`` complex low-rank factor (the rank axis first).

    Returns:
      ``(..., M, M)`` complex, ``A[n, m] = Lambda[n] δ_nm - Σ_r P[r, n] conj(P[r, m])``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from hippox._src.dplr import dplr_matrix
      >>> Lambda = jnp.array([-1.0, -2.0], jnp.complex64)
      >>> P = jnp.array([[1.0, 1.0]], jnp.complex64)  # rank 1
      >>> dplr_matrix(Lambda, P)
      Array([[-2.+0.j, -1.+0.j],
             [-1.+0.j, -3.+0.j]], dtype=complex64)
    """
    Lambda, P = jnp.asarray(Lambda), jnp.asarray(P)
    low = jnp.einsum("r...n,r...m->...nm", P, jnp.conj(P))
    return Lambda[..., :, None] * jnp.eye(Lambda.shape[-1], dtype=Lambda.dtype) - low


def closed_modes(*arrays: jax.Array) -> tuple[jax.Array, ...]:
    """The conjugate-closed mode set of half-layout arrays: ``[x, conj(x)]`` for each.

    Args:
      *arrays: ``Lambda``, ``P``, ``B``, ``C``, … with the mode axis last (``M`` modes).

    Returns:
      A tuple of the same arrays with ``2M`` modes (`hippox._src.parameterization.conj_closed`).
    """
    return tuple(conj_closed(a) for a in arrays)


def identity_minus_power(Lambda: jax.Array, P: jax.Array, dt: jax.Array, L: int) -> jax.Array:
    """``I - Ab^L`` of the bilinear discretisation of the dense DPLR matrix (traceable).

    ``Ab = (I - dt/2 A)^{-1} (I + dt/2 A)`` with ``A = dplr_matrix(Lambda, P)``. The power
    is never formed: ``I - Ab^L`` is close to 0 along the slow modes (``|dt L A| << 1``),
    where ``I - (something ≈ I)`` would lose every digit in float32. Instead the
    differences ``Y_n = Ab^n - I`` are carried from ``Y_1 = Ab - I = (I - dt/2 A)^{-1} dt A``
    (one dense solve, no cancellation) by binary powering with ``Y_{2n} = Y_n (Y_n + 2I)``
    and ``Y_{a+b} = Y_a + Y_b + Y_a Y_b``: ``O(M³ log L)``, relative accuracy kept for the
    small eigenvalues.

    Args:
      Lambda: ``(..., M)`` complex diagonal.
      P: ``(rank, ..., M)`` complex low-rank factor, same dtype as ``Lambda``.
      dt: ``(...)`` real step sizes.
      L: a static Python int >= 1.

    Returns:
      ``(..., M, M)`` complex ``I - Ab^L``.
    """
    A = dplr_matrix(Lambda, P)
    eye = jnp.eye(A.shape[-1], dtype=A.dtype)
    dtc = dt[..., None, None].astype(A.dtype)
    Y = jnp.linalg.solve(eye - (dtc / 2) * A, dtc * A)  # Y_1 = Ab - I
    out = None
    n = int(L)
    while True:
        if n & 1:
            out = Y if out is None else out + Y + out @ Y
        n >>= 1
        if not n:
            break
        Y = Y @ (Y + 2 * eye)
    return -out


# --------------------------------------------------------------------------- validation


def _dplr_arrays(Lambda, P, B, C, dt, *, c_name: str):
    """Validates DPLR arrays; returns them and the broadcast batch shape."""
    Lam = _validate.as_inexact("Lambda", Lambda, allow_bool=True)
    P = _validate.as_inexact("P", P, allow_bool=True)
    C = _validate.as_inexact(c_name, C, allow_bool=True)
    if B is None:
        B = jnp.zeros(Lam.shape[-1:], Lam.dtype)
    else:
        B = _validate.as_inexact("B", B, allow_bool=True)
    dt = _validate.check_step("dt", dt)
    if Lam.ndim < 1:
        raise ValueError(f"`Lambda` must have shape (..., M), got {Lam.shape}.")
    _validate.check_no_positive_real(
        "Lambda", Lam, "the DPLR kernel and C̃ need a stable diagonal part"
    )
    M = Lam.shape[-1]
    if P.ndim < 2 or P.shape[-1] != M:
        raise ValueError(
            f"`P` must have shape (rank, ..., M) with M={M} (from Lambda), got {P.shape}."
        )
    kernels.check_modes("B", B, M)
    kernels.check_modes(c_name, C, M)
    check_rank_axis(P, {"Lambda": Lam, "B": B, c_name: C})
    batch = kernels.broadcast_batch(
        {
            "Lambda": Lam.shape[:-1],
            "P": P.shape[1:-1],
            "B": B.shape[:-1],
            c_name: C.shape[:-1],
            "dt": dt.shape,
        }
    )
    return Lam, P, B, C, dt, batch


def check_rank_axis(P: jax.Array, others: dict) -> None:
    """Refuses a 2-D ``P`` whose first axis could be the channel axis of the others.

    ``P`` ``(rank, M)`` is shared by every channel; with ``(H, M)`` arrays and ``rank ==
    H > 1`` the same shape is also a per-channel P with its rank axis forgotten (which
    would be read as rank H, silently). That ambiguous case is refused.
    """
    if P.ndim != 2:
        return
    for name, x in others.items():
        if x.ndim >= 2 and x.shape[-2] == P.shape[0] > 1:
            raise ValueError(
                f"`P` must have shape (rank, H, M); got {P.shape}, whose first axis could be "
                f"the channel axis H={x.shape[-2]} of `{name}` {x.shape} (rank axis "
                f"missing) or a rank shared by all channels. Pass P[None] (rank 1, one row "
                f"per channel) or P[:, None] (rank {P.shape[0]}, shared)."
            )


def _dplr_flatten(Lam, P, B, C, dt, batch):
    """Broadcasts and flattens to (rows, M), (rows, R, M), (rows,) in the compute dtypes."""
    R, M = P.shape[0], Lam.shape[-1]
    rtype = _validate.compute_dtype(Lam, P, B, C, dt)
    ctype = _validate.complex_dtype(rtype)
    rows = math.prod(batch)
    Lam, B, C = (
        jnp.broadcast_to(x.astype(ctype), (*batch, M)).reshape(rows, M) for x in (Lam, B, C)
    )
    # Align P's batch axes to the right of the rank axis before broadcasting (a (rank, M)
    # P must not have its rank axis matched against the channel axis).
    P = P.reshape(R, *(1,) * (len(batch) + 2 - P.ndim), *P.shape[1:])
    P = jnp.broadcast_to(P.astype(ctype), (R, *batch, M)).reshape(R, rows, M)
    dt = jnp.broadcast_to(dt.astype(rtype), batch).reshape(rows)
    return Lam, jnp.moveaxis(P, 0, 1), B, C, dt, rtype


# --------------------------------------------------------------------------- kernel


def _det(m: jax.Array) -> jax.Array:
    """Determinant of a batch of small square matrices (Laplace expansion up to 4 × 4)."""
    n = m.shape[-1]
    if n == 1:
        return m[..., 0, 0]
    if n == 2:
        return m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
    if n > 4:
        return jnp.linalg.det(m)
    out = 0
    for j in range(n):
        minor = jnp.concatenate([m[..., 1:, :j], m[..., 1:, j + 1 :]], axis=-1)
        out = out + (-1) ** j * m[..., 0, j] * _det(minor)
    return out


def _woodbury_deflated(inv, d, left, right, v, b):
    """``k00 - b k01 (I + b k11)^{-1} k10`` with the nearest pole taken out analytically.

    The Cauchy sums ``k_ij = Σ_m left_i,m right_j,m / d_m`` are dominated, at a node close
    to a pole of the diagonal part (``|d_m| ~ dt |Re Lambda|``, tiny for the HiPPO spectra
    with ``Re(Lambda) ≈ 0`` such as ``legt``), by one term ``l rᵀ / d``, which the Woodbury
    correction cancels: in float32 that cancellation cost up to 1e-2 relative in the
    spectrum. Writing ``k = s + l rᵀ / d`` (``s`` the sums without that mode), the result
    is the ratio of two bordered determinants in which ``1/d`` never appears::

        g = det([[Q0, l'], [-rᵀ, d]]) / det([[I + b s11, b l1], [-r1ᵀ, d]])

    with ``Q0 = [[s00, s01], [b s10, I + b s11]]`` and ``l' = (l0, b l1)`` (the matrix
    determinant lemma applied to the Schur complement ``det(Q) / det(Q11)``).

    Args:
      inv: ``(rows, z, K)`` the reciprocals ``1/d`` of the K pole distances.
      d: ``(rows, z, K)`` the pole distances.
      left, right: ``(rows, 1+R, K)`` numerator factors (``v = left ⊗ right``).
      v: ``(rows, (1+R)², K)`` the numerators.
      b: ``(rows, z)``.
    """
    rows, R1, K = left.shape
    idx = jnp.argmin(d.real**2 + d.imag**2, axis=-1)  # (rows, z): the nearest pole
    keep = jnp.arange(K) != idx[..., None]
    s = jnp.einsum("hzm,hvm->hzv", jnp.where(keep, inv, 0), v)
    s = s.reshape(*s.shape[:2], R1, R1)
    dm = jnp.take_along_axis(d, idx[..., None], axis=-1)[..., 0]  # (rows, z)
    gather = lambda x: jnp.take_along_axis(x[:, None], idx[:, :, None, None], axis=-1)[..., 0]
    lm, rm = gather(left), gather(right)  # (rows, z, 1+R)
    bb = b[..., None]
    eye = jnp.eye(R1 - 1, dtype=s.dtype)
    lower = eye + bb[..., None] * s[..., 1:, 1:]
    q0 = jnp.concatenate(
        [s[..., :1, :], jnp.concatenate([bb[..., None] * s[..., 1:, :1], lower], axis=-1)],
        axis=-2,
    )
    lp = jnp.concatenate([lm[..., :1], bb * lm[..., 1:]], axis=-1)
    num = jnp.concatenate(
        [
            jnp.concatenate([q0, lp[..., None]], axis=-1),
            jnp.concatenate([-rm, dm[..., None]], axis=-1)[..., None, :],
        ],
        axis=-2,
    )
    den = jnp.concatenate(
        [
            jnp.concatenate([lower, (bb * lm[..., 1:])[..., None]], axis=-1),
            jnp.concatenate([-rm[..., 1:], dm[..., None]], axis=-1)[..., None, :],
        ],
        axis=-2,
    )
    return _det(num) / _det(den)


def kernel_dplr(
    Lambda: ArrayLike,
    P: ArrayLike,
    B: ArrayLike,
    C_tilde: ArrayLike,
    dt: ArrayLike,
    L: int,
    *,
    conj_sym: bool = True,
    chunk_size: int | None = None,
) -> jax.Array:
    """S4 convolution kernel of a diagonal-plus-low-rank SSM (Cauchy kernel + Woodbury).

    The system ``A = diag(Lambda) - Pᵀ conj(P)`` on the conjugate-closed mode set (with
    ``conj_sym=True``: ``Lambda_full = [Lambda, conj(Lambda)]``, ``P_full = [P, conj(P)]``,
    ``B_full``, ``C̃_full`` likewise; module docstring) is discretised with the bilinear
    method and its length-``L`` kernel is obtained from the generating function
    ``Σ_{l<L} K_l z^l = C̃ (I - Ab z)^{-1} Bb`` at the L-th roots of unity
    (``C̃ = C (I - Ab^L)``, see `dplr_c_tilde`). At ``z = e^{iθ}`` the resolvent is
    ``(I - z Ab)^{-1} Bb = e^{-iθ/2} (a I - b A)^{-1} dt B`` with ``a = -2i sin(θ/2)`` and
    ``b = dt cos(θ/2)``: finite at every node, including the Nyquist node ``z = -1``
    (``b = 0``) where the usual ``2/dt (1-z)/(1+z)`` is infinite. The inverse of
    ``diag(a - b Lambda) + b Pᵀ conj(P)`` is expanded with the Woodbury identity (a
    closed form for rank 1 and 2, a small ``rank × rank`` solve per node otherwise).

    With ``conj_sym=True`` the Cauchy sums run over the closed set without forming it:
    ``Σ_m [v_m / (a - b λ_m) + conj(v_m) / (a - b conj(λ_m))]``, whose second term is the
    conjugate of the plain sum at the node ``conj(z)`` (``a -> -a``); the Woodbury
    correction is applied to these symmetrised sums, so the two halves are coupled through
    ``P`` as in the real system. The closed system's kernel is real, and its spectrum at
    the ``L//2 + 1`` nodes `jnp.fft.irfft` needs is the value itself. With
    ``conj_sym=False`` the ``M`` modes are the system and the spectrum of ``Re K`` is
    ``(k̂(z) + conj(k̂(conj z))) / 2``. Either way the cost is ``O(H M L)`` (times
    ``rank²``) with no ``M × M`` (or ``2M × 2M``) matrices.

    Reproducing a real NPLR system: for ``Lambda, P, B, V = hippox.nplr(measure, N)``,
    ``A, b = hippox.transition(measure, N)`` and a real output row ``c`` ``(N,)``, the
    kernel ``c Ab^l Bb`` of the real bilinear system equals
    ``kernel_dplr(Lambda, P, B, dplr_c_tilde(c @ V, Lambda, P, dt, L), dt, L)``
    (``conj_sym=True``; ``C = c V`` because ``c V_full = [c V, conj(c V)]``).

    Args:
      Lambda: ``(..., M)`` complex diagonal part, ``Re(Lambda) < 0`` strictly: the
        Cauchy/Woodbury evaluation divides by ``g(z) - Lambda``, which vanishes at the
        ``z = 1`` node for an eigenvalue exactly 0 (the raw ``nplr`` spectra of ``fout``,
        ``legt``, ``lagt`` have ``Re(Lambda) = 0``, ``fout`` an exact 0). Clamp
        ``Re(Lambda) <= -1e-4`` first, as hippox's layers (`hippox.initializers`) and the
        reference S4 init do.
      P: ``(rank, ..., M)`` complex low-rank factor (the rank axis first).
      B: ``(..., M)`` input vector.
      C_tilde: ``(..., M)`` the output vector in S4's parameterisation,
        ``C_tilde = C (I - Ab^L)`` (`dplr_c_tilde` with the same ``conj_sym``;
        `dplr_c_from_tilde` inverts it). With ``conj_sym=True`` it is the first half of
        the conjugate-symmetric ``C̃_full``.
      dt: ``(...)`` positive real step sizes, one per channel (e.g. ``(H,)``).
      L: kernel length, an int >= 1 (even or odd).
      conj_sym: ``True``: the arrays are one half of a conjugate-closed set of ``2M``
        modes and ``K`` is the (real) kernel of that closed system; ``False``: the ``M``
        modes are the system and ``K = Re`` of its kernel.
      chunk_size: number of frequency nodes evaluated together (``None``: as many as fit
        the memory budget, module docstring).

    Returns:
      ``(..., L)`` real kernel (``(H, L)`` for the usual shapes), float32 or float64.

    Raises:
      ValueError: for bad shapes, ``L < 1`` or a bad ``chunk_size``.
      TypeError: for a complex ``dt``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import hippox
      >>> Lambda, P, B, V = hippox.nplr("legs", 8)
      >>> C = jnp.ones((2, 4), jnp.complex64)                 # H = 2 channels
      >>> dt = jnp.array([0.01, 0.1], jnp.float32)
      >>> Ct = hippox.dplr_c_tilde(C, Lambda, P, dt, 64)
      >>> K = hippox.kernel_dplr(Lambda, P, B, Ct, dt, 64)
      >>> K.shape, K.dtype
      ((2, 64), dtype('float32'))

      The real LegS system with output row ``c``: ``C = c V``.

      >>> A, b = hippox.transition("legs", 8)
      >>> c = jnp.arange(8.0) / 8
      >>> Ab, Bb = hippox.discretize(A, b, 0.1, method="bilinear")
      >>> K_real = hippox.kernel_naive(Ab, Bb, c, 16)
      >>> Ct = hippox.dplr_c_tilde(c @ V, Lambda, P, 0.1, 16)
      >>> bool(np.allclose(hippox.kernel_dplr(Lambda, P, B, Ct, 0.1, 16), K_real, atol=1e-5))
      True
    """
    L = _validate.check_size("L", L)
    conj_sym = _validate.check_bool("conj_sym", conj_sym)
    chunk_size = kernels.check_chunk_size(chunk_size)
    if B is None:
        raise TypeError("`B` must be an array of shape (..., M), got None.")
    arrays = _dplr_arrays(Lambda, P, B, C_tilde, dt, c_name="C_tilde")
    values = _validate.concrete_value(arrays[0])
    if values is not None and np.any(values == 0):
        raise ValueError(
            "`Lambda` must have no exact zero entry for kernel_dplr (the Cauchy sums divide "
            "by g(z) - Lambda, which vanishes at the z = 1 node; the raw nplr('fout') "
            "spectrum has one): clamp Re(Lambda) <= -1e-4 first, as hippox.initializers do, "
            f"got {int(np.sum(values == 0))} zero entries."
        )
    return _kernel_dplr(*arrays, L=L, conj_sym=conj_sym, chunk_size=chunk_size)


@functools.partial(jax.jit, static_argnames=("L", "conj_sym", "chunk_size", "batch"))
def _kernel_dplr(Lam, P, B, Ct, dt, batch, *, L, conj_sym, chunk_size):
    Lam, P, B, Ct, dt, rtype = _dplr_flatten(Lam, P, B, Ct, dt, batch)
    ctype = Lam.dtype
    rows, R, M = P.shape
    # Cauchy numerators v[h, i, j, m] = left[i] right[j]: left = (C̃, conj P), right = (B, P).
    # On the conjugate half both are conjugated, so the numerators there are conj(v).
    left = jnp.concatenate([Ct[:, None], P.conj()], axis=1)
    right = jnp.concatenate([B[:, None], P], axis=1)
    v = (left[:, :, None] * right[:, None]).reshape(rows, (R + 1) ** 2, M)
    left, right = left.astype(ctype), right.astype(ctype)

    nf = L // 2 + 1  # the nodes z = e^{iθ} irfft needs; each also gives its conjugate
    per_node = rows * (8 * M + 3 * (R + 1) ** 2 + (R + 3) ** 2)
    zc = chunk_size or max(1, kernels.budget_elements(kernels.memory_budget(), ctype) // per_node)
    zc = min(zc, nf)
    nchunk = -(-nf // zc)
    theta = -2.0 * np.pi * np.arange(nf) / L
    theta = np.concatenate([theta, np.zeros(nchunk * zc - nf)]).reshape(nchunk, zc)
    # Node constants in float64 on the host, cast once: a = -2i sin(θ/2), cos(θ/2), e^{-iθ/2}.
    # The conjugate node conj(z) has -a, the same cos(θ/2), and the conjugate phase.
    a_nodes = jnp.asarray(-2j * np.sin(theta / 2), ctype)
    c_nodes = jnp.asarray(np.cos(theta / 2), rtype)
    phase_nodes = jnp.asarray(np.exp(-0.5j * theta), ctype)

    def spectrum(nodes):  # (zc,) node constants -> (rows, zc) spectrum of the real kernel
        a, c, phase = nodes
        b = dt[:, None] * c  # (rows, zc)
        bl = b[..., None] * Lam[:, None, :]  # (rows, zc, M)
        d_z = a[None, :, None] - bl  # pole distances at z
        d_c = -a[None, :, None] - bl  # ... and at conj(z)
        if conj_sym:
            # Σ over the closed set at z: the half (poles Lambda) plus the conjugate half
            # (poles conj(Lambda), numerators conj(v)), whose distances are conj(d_c).
            d = jnp.concatenate([d_z, d_c.conj()], axis=-1)
            lr = (jnp.concatenate([x, x.conj()], axis=-1) for x in (left, right))
            g = _woodbury_deflated(1.0 / d, d, *lr, jnp.concatenate([v, v.conj()], -1), b)
        else:
            g_z = _woodbury_deflated(1.0 / d_z, d_z, left, right, v, b)
            g_c = _woodbury_deflated(1.0 / d_c, d_c, left, right, v, b)
            g = 0.5 * (g_z + g_c.conj())
        return (dt[:, None] * phase) * g

    nodes = (a_nodes, c_nodes, phase_nodes)
    if nchunk == 1:
        spec = spectrum(tuple(x[0] for x in nodes))
    else:
        spec = jax.lax.map(spectrum, nodes)  # (nchunk, rows, zc)
        spec = jnp.moveaxis(spec, 0, 1).reshape(rows, nchunk * zc)
    K = jnp.fft.irfft(spec[:, :nf], n=L, axis=-1)
    return K.astype(rtype).reshape(*batch, L)


# --------------------------------------------------------------------------- C̃


def dplr_c_tilde(
    C: ArrayLike,
    Lambda: ArrayLike,
    P: ArrayLike,
    dt: ArrayLike,
    L: int,
    *,
    conj_sym: bool = True,
) -> jax.Array:
    """S4's output parameterisation ``C̃ = C (I - Ab^L)`` (row vector times matrix).

    ``Ab`` is the bilinear discretisation of ``A = diag(Lambda) - Pᵀ conj(P)`` with step
    ``dt`` on the conjugate-closed mode set (module docstring). With ``conj_sym=True``
    the transform is applied to the closed ``2M``-mode system, ``C̃_full = C_full (I -
    Ab_full^L)`` with ``C_full = [C, conj(C)]``; ``C̃_full`` is again conjugate-symmetric
    and its first half is returned. ``Ab^L`` is computed by repeated squaring of the dense
    ``M × M`` (``2M × 2M`` with ``conj_sym``) matrix, ``O(M^3 log L)`` per channel: meant
    for initialisation or length changes, not for every training step.

    Precision: ``I - Ab^L`` is formed from the differences ``Ab^n - I`` (never as ``I -
    (something ≈ I)``), but it is ill-conditioned along slow modes (``|dt L A| << 1``)
    and every float32 matrix product perturbs those. With float32/complex64 inputs the
    transform therefore runs in complex128 whenever that exists (``jax_enable_x64`` on,
    a CPU or GPU backend) and is cast back; otherwise it runs in complex64, where ``C``
    can be off by ~1e-3 relative for spectra with ``Re(Lambda) ≈ 0`` at ``dt L ≈ 4``
    (measured: ``fout``, ``dt = 2e-3``, ``L = 4096``).

    Args:
      C: ``(..., M)`` output vector (the first half of ``C_full`` with ``conj_sym``).
      Lambda: ``(..., M)`` diagonal part.
      P: ``(rank, ..., M)`` low-rank factor.
      dt: ``(...)`` step sizes.
      L: kernel length, an int >= 1.
      conj_sym: whether the arrays are one half of a conjugate-closed set (as for
        `kernel_dplr`; use the same value there).

    Returns:
      ``(..., M)`` complex ``C̃`` (the broadcast batch shape), complex64 or complex128.

    Raises:
      ValueError: for bad shapes or ``L < 1``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> import hippox
      >>> Lambda, P, B, V = hippox.nplr("legs", 8)
      >>> C = jnp.ones((4,), jnp.complex64)
      >>> Ct = hippox.dplr_c_tilde(C, Lambda, P, 0.1, 16)
      >>> C2 = hippox.dplr_c_from_tilde(Ct, Lambda, P, 0.1, 16)
      >>> bool(np.allclose(C2, C, atol=1e-4))
      True
    """
    return _c_tilde_transform(C, Lambda, P, dt, L, "C", inverse=False, conj_sym=conj_sym)


def dplr_c_from_tilde(
    C_tilde: ArrayLike,
    Lambda: ArrayLike,
    P: ArrayLike,
    dt: ArrayLike,
    L: int,
    *,
    conj_sym: bool = True,
) -> jax.Array:
    """Inverse of `dplr_c_tilde`: ``C = C̃ (I - Ab^L)^{-1}``.

    Used by the step (recurrent) mode, which needs the plain ``C``. With ``conj_sym=True``
    the inverse is taken on the closed system (``C_full = C̃_full (I - Ab_full^L)^{-1}``,
    first half returned). Same cost remarks as `dplr_c_tilde`; ``I - Ab^L`` is invertible
    when ``Ab`` has no eigenvalue that is an L-th root of unity (always true for a stable
    ``A``).

    Args:
      C_tilde: ``(..., M)`` output vector in S4's parameterisation.
      Lambda: ``(..., M)`` diagonal part.
      P: ``(rank, ..., M)`` low-rank factor.
      dt: ``(...)`` step sizes.
      L: the kernel length ``C_tilde`` was defined for, an int >= 1.
      conj_sym: whether the arrays are one half of a conjugate-closed set (as for
        `dplr_c_tilde` and `kernel_dplr`).

    Returns:
      ``(..., M)`` complex ``C``, complex64 or complex128.

    Raises:
      ValueError: for bad shapes or ``L < 1``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import hippox
      >>> Lambda, P, B, V = hippox.nplr("legs", 8)
      >>> hippox.dplr_c_from_tilde(jnp.ones((3, 4)), Lambda, P, jnp.full((3,), 0.1), 32).shape
      (3, 4)
    """
    return _c_tilde_transform(C_tilde, Lambda, P, dt, L, "C_tilde", inverse=True, conj_sym=conj_sym)


def _c_tilde_transform(C, Lambda, P, dt, L, c_name: str, *, inverse: bool, conj_sym) -> jax.Array:
    """Validation shared by `dplr_c_tilde` and `dplr_c_from_tilde`."""
    L = _validate.check_size("L", L)
    conj_sym = _validate.check_bool("conj_sym", conj_sym)
    arrays = _dplr_arrays(Lambda, P, None, C, dt, c_name=c_name)
    return _c_tilde(*arrays, L=L, inverse=inverse, conj_sym=conj_sym)


def _wide_available() -> bool:
    """Whether complex128 can be used internally: x64 on and a backend that has it (not TPU)."""
    return bool(jax.config.jax_enable_x64) and jax.default_backend() != "tpu"


@functools.partial(jax.jit, static_argnames=("batch", "L", "inverse", "conj_sym"))
def _c_tilde(Lam, P, B, C, dt, batch, *, L, inverse, conj_sym):
    Lam, P, _, C, dt, rtype = _dplr_flatten(Lam, P, B, C, dt, batch)
    ctype = Lam.dtype
    if rtype != np.float64 and _wide_available():
        # ``I - Ab^L`` is ill-conditioned along the slow modes (``|dt L A| << 1``): every
        # float32 product of the powering perturbs them by ~eps |Ab|, up to 2e-3 relative
        # in C at dt = 1e-3, L = 4096 (fout). The transform is small (once per parameter
        # set), so where complex128 exists it runs in complex128 and is cast back.
        Lam, P, C = (x.astype(np.complex128) for x in (Lam, P, C))
        dt = dt.astype(np.float64)
    out = _c_tilde_core(Lam, P, C, dt, L=L, inverse=inverse, conj_sym=conj_sym)
    return out.astype(ctype).reshape(*batch, out.shape[-1])


def _c_tilde_core(Lam, P, C, dt, *, L, inverse, conj_sym):
    """``C (I - Ab^L)`` or ``C (I - Ab^L)^{-1}`` on flattened rows (traced)."""
    M = Lam.shape[-1]
    if conj_sym:  # the conjugate-closed 2M-mode system; its C and C̃ are conj-symmetric
        Lam, P, C = closed_modes(Lam, P, C)
    IA = identity_minus_power(Lam, jnp.moveaxis(P, 1, 0), dt, L)  # (rows, M', M')
    if inverse:
        out = jnp.linalg.solve(jnp.swapaxes(IA, -1, -2), C[..., None])[..., 0]
    else:
        out = jnp.einsum("hn,hnm->hm", C, IA)
    return out[:, :M]
