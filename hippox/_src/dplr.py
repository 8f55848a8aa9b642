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
(``kernels.MEMORY_BUDGET``). `dplr_c_tilde` forms the dense matrix ``I - Ab^L``
(``O(M³ log L)`` per channel); `dplr_c_from_tilde` sums resolvents at the L-th roots of
unity (``O(L M rank²)`` per channel, no ``M × M`` matrix): both are meant for
initialisation and step-mode setup, not for every training step.
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


def _woodbury_deflated(s, lm, rm, dm, b):
    """``k00 - b k01 (I + b k11)^{-1} k10`` with the nearest pole taken out analytically.

    The Cauchy sums ``k_ij = Σ_m left_i,m right_j,m / d_m`` are dominated, at a node close
    to a pole of the diagonal part (``|d_m| ~ dt |Re Lambda|``, tiny for the HiPPO spectra
    with ``Re(Lambda) ≈ 0`` such as ``legt``), by one term ``l rᵀ / d``, which the Woodbury
    correction cancels: in float32 that cancellation cost up to 1e-2 relative in the
    spectrum. Writing ``k = s + l rᵀ / d`` (``s`` the sums without that mode), the result
    is the ratio of two bordered determinants in which ``1/d`` never appears::

        g = det([[Q0, l'], [-rᵀ, d]]) / det([[I + b s11, b l1], [-r1ᵀ, d]])

    with ``Q0 = [[s00, s01], [b s10, I + b s11]]`` and ``l' = (l0, b l1)`` (the matrix
    determinant lemma applied to the Schur complement ``det(Q) / det(Q11)``). Rank 1 uses
    the expanded 3 × 3 / 2 × 2 determinants.

    Args:
      s: ``(rows, z, 1+R, 1+R)`` the Cauchy sums without the nearest pole.
      lm, rm: ``(rows, z, 1+R)`` that pole's numerator factors (``v = l ⊗ r``).
      dm: ``(rows, z)`` its distance.
      b: ``(rows, z)``.
    """
    R1 = s.shape[-1]
    b = b.astype(s.dtype)
    if R1 == 2:
        s00, s01, s10, s11 = s[..., 0, 0], s[..., 0, 1], s[..., 1, 0], s[..., 1, 1]
        l0, l1, r0, r1 = lm[..., 0], lm[..., 1], rm[..., 0], rm[..., 1]
        q = 1 + b * s11
        num = s01 * b * (s10 * dm + l1 * r0) - l0 * (r0 * q - b * s10 * r1)
        return s00 - num / (dm * q + b * l1 * r1)
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


def _pole_nodes(sets, dt, a_all, c_all, nf: int, L: int):
    """The node next to each pole, and the one pole taken out at each node.

    ``sets``: ``(mu, sign, l, r)`` per set of poles ``mu`` ``(rows, M)`` whose distances
    at node ``k`` are ``sign a_k - b_k mu`` (``b_k = dt c_k``) and whose Cauchy
    numerators are ``l ⊗ r`` (``(rows, 1+R, M)``). ``|sign a - b mu| = |1 + dt mu / 2|
    |z - z*|`` with ``z* = (1 - dt mu/2) / (1 + dt mu/2)`` (``conj(z*)`` for ``sign =
    -1``), so each pole's nearest node is ``round(-arg(z*) L / 2π)``: found in ``O(rows
    M)`` instead of a min over the modes at every node. Where several poles share their
    nearest node, only the nearest of them is taken out there (none on an exact tie).

    Returns, per set, the node index of each taken-out pole ``(rows, M)`` (-1: none),
    and per node ``(rows, nf)``: that pole's ``l``, ``r`` ``(rows, nf, 1+R)`` and distance
    (1 where no pole is taken out, which makes `_woodbury_deflated` the plain formula).
    """
    rows = dt.shape[0]
    hrow = jnp.arange(rows)[:, None]
    found = []
    for mu, sign, _, _ in sets:
        h = (dt[:, None] / 2).astype(mu.dtype) * mu
        zs = (1 - h) / (1 + h)
        k = jnp.round(-jnp.angle(zs) * (L / (2 * np.pi))).astype(np.int32) % L
        k = k if sign > 0 else (L - k) % L
        valid = k < nf
        kk = jnp.where(valid, k, 0)
        d = sign * a_all[kk] - (dt[:, None] * c_all[kk]) * mu
        q = d.real**2 + d.imag**2
        q = jnp.where(valid, q, jnp.asarray(np.inf, q.dtype))
        found.append((jnp.where(valid, k, nf), d, q))
    best = jnp.full((rows, nf), np.inf, found[0][2].dtype)
    for k, _, q in found:
        best = best.at[hrow, k].min(q, mode="drop")
    count = jnp.zeros((rows, nf), np.int32)
    wins = []
    for k, _, q in found:
        win = (k < nf) & (q == best[hrow, jnp.minimum(k, nf - 1)])
        wins.append(win)
        count = count.at[hrow, k].add(win.astype(np.int32), mode="drop")
    R1 = sets[0][2].shape[1]
    dtype = sets[0][0].dtype
    lm = jnp.zeros((rows, nf, R1), dtype)
    rm = jnp.zeros((rows, nf, R1), dtype)
    dm = jnp.zeros((rows, nf), dtype)
    used = jnp.zeros((rows, nf), bool)
    knodes = []
    for (_, _, l, r), (k, d, _), win in zip(sets, found, wins, strict=True):
        take = win & (count[hrow, jnp.minimum(k, nf - 1)] == 1)
        ks = jnp.where(take, k, nf)
        put = lambda acc, x: acc.at[hrow, ks].add(x, mode="drop")  # noqa: B023
        lm = put(lm, jnp.where(take[..., None], jnp.swapaxes(l, 1, 2), 0))
        rm = put(rm, jnp.where(take[..., None], jnp.swapaxes(r, 1, 2), 0))
        dm = put(dm, jnp.where(take, d, 0))
        used = used.at[hrow, ks].set(True, mode="drop")
        knodes.append(jnp.where(take, k, -1))
    return knodes, lm, rm, jnp.where(used, dm, 1)


def _masked_sums(d, knode, node, v, *, conj: bool):
    """Cauchy sums ``(rows, z, 1+R, 1+R)`` of one set of poles without the taken-out one.

    ``d`` ``(rows, z, M)`` are the distances at the nodes ``node`` ``(z,)``; ``knode``
    ``(rows, M)`` the node at which each pole is taken out (-1: none). The numerators are
    ``v`` (``conj=False``) or ``conj(v)`` (``conj=True``, the conjugate half).
    """
    rows, z, _ = d.shape
    out = knode[:, None, :] == node[None, :, None]
    inv = 1.0 / jnp.where(out, 1, d)
    inv = jnp.where(out, 0, inv.conj() if conj else inv)
    s = jnp.einsum("hzm,hvm->hzv", inv, v)
    s = s.conj() if conj else s
    R1 = math.isqrt(v.shape[1])
    return s.reshape(rows, z, R1, R1)


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
    memory_budget: int | None = None,
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
      memory_budget: the budget in bytes of complex intermediates that sets the node
        chunks when ``chunk_size`` is None, or None for `hippox.memory_budget` of the
        default device (as `hippox.kernel_diag`). A static value: each distinct budget
        compiles its own kernel.

    Returns:
      ``(..., L)`` real kernel (``(H, L)`` for the usual shapes), float32 or float64.

    Raises:
      ValueError: for bad shapes, ``L < 1``, a bad ``chunk_size`` or ``memory_budget``.
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
    budget = kernels.check_memory_budget(memory_budget)
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
    return _kernel_dplr(*arrays, L=L, conj_sym=conj_sym, chunk_size=chunk_size, budget=budget)


@functools.partial(jax.jit, static_argnames=("L", "conj_sym", "chunk_size", "batch", "budget"))
def _kernel_dplr(Lam, P, B, Ct, dt, batch, *, L, conj_sym, chunk_size, budget):
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
    per_node = rows * (4 * M + 3 * (R + 1) ** 2 + (R + 3) ** 2)  # complex elements per node
    zc = chunk_size or max(1, kernels.budget_elements(budget, ctype) // per_node)
    zc = min(zc, nf)
    nchunk = -(-nf // zc)
    zc = zc if chunk_size else -(-nf // nchunk)  # balanced chunks: little padding
    theta = -2.0 * np.pi * np.arange(nf) / L
    theta = np.concatenate([theta, np.zeros(nchunk * zc - nf)]).reshape(nchunk, zc)
    # Node constants in float64 on the host, cast once: a = -2i sin(θ/2), cos(θ/2), e^{-iθ/2}.
    # The conjugate node conj(z) has -a, the same cos(θ/2), and the conjugate phase.
    a_nodes = jnp.asarray(-2j * np.sin(theta / 2), ctype)
    c_nodes = jnp.asarray(np.cos(theta / 2), rtype)
    phase_nodes = jnp.asarray(np.exp(-0.5j * theta), ctype)
    index = jnp.asarray(np.arange(nchunk * zc).reshape(nchunk, zc), np.int32)
    # The poles taken out of the Cauchy sums (`_woodbury_deflated`): with conj_sym one sum
    # over the closed set at z (poles Lambda, numerators v; poles conj(Lambda), numerators
    # conj(v), distances a - b conj(Lambda) as a is imaginary); else one sum at z and one
    # at conj(z) (distances -a - b Lambda), each with its own pole.
    a_all, c_all = a_nodes.reshape(-1)[:nf], c_nodes.reshape(-1)[:nf]
    # Padding nodes get d = 1, l = r = 0 (finite, so no NaN reaches the gradients).
    pad = lambda x, v: jnp.pad(
        x, [(0, 0), (0, nchunk * zc - nf)] + [(0, 0)] * (x.ndim - 2), constant_values=v
    )
    to_map = lambda x, v=0: jnp.moveaxis(pad(x, v).reshape(rows, nchunk, zc, *x.shape[2:]), 1, 0)
    if conj_sym:
        sets = [(Lam, 1, left, right), (Lam.conj(), 1, left.conj(), right.conj())]
        knodes, lm, rm, dm = _pole_nodes(sets, dt, a_all, c_all, nf, L)
        poles = (tuple(knodes), (to_map(lm), to_map(rm), to_map(dm, 1)))
    else:
        found = [_pole_nodes([(Lam, sg, left, right)], dt, a_all, c_all, nf, L) for sg in (1, -1)]
        poles = (
            tuple(f[0][0] for f in found),
            tuple((to_map(f[1]), to_map(f[2]), to_map(f[3], 1)) for f in found),
        )

    def spectrum(xs):  # (zc,) node constants -> (rows, zc) spectrum of the real kernel
        a, c, phase, node, per_node = xs
        b = dt[:, None] * c  # (rows, zc)
        bl = b[..., None] * Lam[:, None, :]  # (rows, zc, M)
        d_z = a[None, :, None] - bl  # pole distances at z
        if conj_sym:
            k_z, k_h = poles[0]
            s = _masked_sums(d_z, k_z, node, v, conj=False)
            s = s + _masked_sums(a[None, :, None] - bl.conj(), k_h, node, v, conj=True)
            g = _woodbury_deflated(s, *per_node, b)
        else:
            d_c = -a[None, :, None] - bl  # ... and at conj(z)
            g_z, g_c = (
                _woodbury_deflated(_masked_sums(d, k, node, v, conj=False), *pn, b)
                for d, k, pn in zip((d_z, d_c), poles[0], per_node, strict=True)
            )
            g = 0.5 * (g_z + g_c.conj())
        return (dt[:, None] * phase) * g

    nodes = (a_nodes, c_nodes, phase_nodes, index, poles[1])
    if nchunk == 1:
        spec = spectrum(jax.tree.map(lambda x: x[0], nodes))
    else:
        # Rematerialised: the backward pass recomputes each chunk's Cauchy sums instead of
        # storing every chunk's (rows, zc, M) intermediates (S4 H 256, N 64, L 4096: kernel
        # forward + backward 509 -> 308 ms, 701 -> 81 MiB on a 2-core CPU).
        spec = jax.lax.map(jax.checkpoint(spectrum), nodes)  # (nchunk, rows, zc)
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
    a CPU or GPU backend) and is cast back. Otherwise (x64 off, JAX's default, or a TPU)
    the complex64 result (up to 3e-4 off for ``fout``, ``dt = 2e-3``, ``L = 4096``) gets
    one step of iterative refinement, whose residual ``C - C̃ (I - Ab^L)^{-1}`` comes
    from the accurate resolvent form of `dplr_c_from_tilde`: measured within 1.3e-5 of
    float64 for the ``fout``, ``legt``, ``legs``, ``lagt`` spectra at ``N = 64``, ``L =
    4096``, ``dt`` in ``[1e-3, 1e-1]``.

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
    first half returned). ``I - Ab^L`` is invertible when ``Ab`` has no eigenvalue that
    is an L-th root of unity (always true for a stable ``A``).

    Method: ``Ab^L`` is never formed. Partial fractions give ``(I - Ab^L)^{-1} = (1/L)
    Σ_k (I - z_k Ab)^{-1}`` over the L-th roots of unity ``z_k``, and each row
    ``C̃ (I - z_k Ab)^{-1}`` is a Woodbury solve of the diagonal-plus-low-rank resolvent
    with the nearest pole of ``diag(Lambda)`` solved for exactly (as in `kernel_dplr`):
    ``O(L M rank²)`` per channel, in the inputs' precision. In complex64 (x64 off) it is
    within ~3e-6 of float64 where the dense complex64 power was ~1e-3 off (``fout``,
    ``N = 32..64``, ``L = 512..4096``, ``dt`` in ``[1e-3, 1e-1]``), so S4's step mode
    matches its convolution in float32 without x64.

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
    if inverse:
        out = _c_from_tilde_nodes(Lam, P, C, dt, L=L, conj_sym=conj_sym)
    elif rtype == np.float64 or _wide_available():
        # ``I - Ab^L`` is ill-conditioned along the slow modes (``|dt L A| << 1``): every
        # float32 product of the powering perturbs them by ~eps |Ab|, up to 3e-4 relative
        # in C̃ at dt = 2e-3, L = 4096 (fout). The transform is small (once per parameter
        # set), so where complex128 exists it runs in complex128 and is cast back.
        wide = (x.astype(np.complex128) for x in (Lam, P, C))
        out = _c_tilde_dense(*wide, dt.astype(np.float64), L=L, conj_sym=conj_sym)(C)
    else:
        # complex64 only: the dense C (I - Ab^L), then one step of iterative refinement
        # whose residual C - C̃ (I - Ab^L)^{-1} comes from the accurate node form.
        apply = _c_tilde_dense(Lam, P, C, dt, L=L, conj_sym=conj_sym)
        out = apply(C)
        out = out + apply(C - _c_from_tilde_nodes(Lam, P, out, dt, L=L, conj_sym=conj_sym))
    return out.astype(ctype).reshape(*batch, out.shape[-1])


def _c_tilde_dense(Lam, P, C, dt, *, L, conj_sym):
    """``x -> x (I - Ab^L)`` (first ``M`` entries) on flattened rows, ``I - Ab^L`` dense."""
    M = Lam.shape[-1]
    if conj_sym:  # the conjugate-closed 2M-mode system; its C and C̃ are conj-symmetric
        Lam, P = closed_modes(Lam, P)
    IA = identity_minus_power(Lam, jnp.moveaxis(P, 1, 0), dt, L)  # (rows, M', M')

    def apply(x):
        x = conj_closed(x) if conj_sym else x
        return jnp.einsum("hn,hnm->hm", x.astype(IA.dtype), IA)[:, :M]

    return apply


def _c_from_tilde_nodes(Lam, P, Ct, dt, *, L, conj_sym):
    """``C = C̃ (I - Ab^L)^{-1}`` from resolvents at the L-th roots of unity (traced).

    Partial fractions of ``1 / (1 - x^L)`` give ``(I - Ab^L)^{-1} = (1/L) Σ_k (I - z_k
    Ab)^{-1}`` over ``z_k = e^{iθ_k}``, ``θ_k = 2πk/L``, and the bilinear form gives
    ``(I - z Ab)^{-1} = e^{-iθ/2} (a I - b A)^{-1} (I - dt/2 A)`` with ``a = -2i
    sin(θ/2)``, ``b = dt cos(θ/2)`` (as in `kernel_dplr`). So ``C = s (I - dt/2 A)`` with
    ``s = (1/L) Σ_k e^{-iθ_k/2} C̃ (a_k I - b_k A)^{-1}``, and each row ``C̃ (a I -
    b A)^{-1}`` is the Woodbury inverse of ``diag(a - b Lambda) + b Pᵀ conj(P)``:
    ``w_m = (C̃_m - b Σ_r q_r conj(P_rm)) / (a - b Lambda_m)``, ``q = k01 (I + b
    k11)^{-1}``, ``k01_r = Σ_n C̃_n P_rn / d_n``, ``k11_rs = Σ_n conj(P_rn) P_sn / d_n``.

    Neither ``A`` nor ``Ab^L`` is formed: the near-singular ``I - Ab^L`` (slow modes,
    ``|1 - λ^L| << 1``) appears only through the pole terms ``1 / (a - b λ)``, whose
    distances are computed from ``Lambda`` and the host-exact node constants, so the
    conversion keeps float32 accuracy where the dense powering loses ~1e-3 (every
    rounding of a product of ``Ab`` moves the slow eigenvalues, amplified L times).
    Cost ``O(L M rank²)`` per row, nodes in chunks within ``kernels.memory_budget()``.

    Args:
      Lam: ``(rows, M)``; P: ``(rows, R, M)``; Ct: ``(rows, M)``; dt: ``(rows,)`` real.

    Returns:
      ``(rows, M)`` complex ``C`` (the first half of ``C_full`` for ``conj_sym``).
    """
    ctype = Lam.dtype
    rtype = dt.dtype
    rows, R, M = P.shape
    if conj_sym:  # the conjugate-closed 2M-mode system; C̃_full and C_full conj-symmetric
        Lam, P, Ct = closed_modes(Lam, P, Ct)
    Mf = Lam.shape[-1]
    per_node = rows * (6 * Mf + 2 * (R + 1) ** 2)  # complex elements per node
    zc = max(1, min(L, kernels.budget_elements(kernels.memory_budget(), ctype) // per_node))
    nchunk = -(-L // zc)
    theta = 2.0 * np.pi * np.arange(nchunk * zc) / L
    weight = (np.arange(nchunk * zc) < L) / L  # padding nodes contribute nothing
    nodes = (
        jnp.asarray((-2j * np.sin(theta / 2)).reshape(nchunk, zc), ctype),
        jnp.asarray(np.cos(theta / 2).reshape(nchunk, zc), rtype),
        jnp.asarray((weight * np.exp(-0.5j * theta)).reshape(nchunk, zc), ctype),
    )
    Pc = P.conj()
    eye = jnp.eye(R, dtype=ctype)

    def partial_sum(node):  # (zc,) node constants -> (rows, M) Σ_k weight_k w(z_k)[:M]
        a, c, wgt = node
        b = dt[:, None] * c  # (rows, zc)
        d = a[None, :, None] - b[..., None] * Lam[:, None, :]  # (rows, zc, Mf)
        # The nearest pole j is taken out of the sums and solved for with the low-rank
        # unknowns y = b w Pᵀ: [y, w_j] [[I + b s11, conj(P_j)], [-b P_jᵀ, d_j]] = [b s01, C̃_j]
        # (s: the sums without mode j), so 1/d_j never meets the Woodbury cancellation.
        j = jnp.argmin(d.real**2 + d.imag**2, axis=-1)  # (rows, zc)
        onehot = jnp.arange(Mf) == j[..., None]
        inv = jnp.where(onehot, 0, 1.0 / jnp.where(onehot, 1, d))
        s01 = jnp.einsum("hzn,hn,hrn->hzr", inv, Ct, P)
        s11 = jnp.einsum("hzn,hrn,hsn->hzrs", inv, Pc, P)
        pick = lambda x: jnp.take_along_axis(x[:, None], j[:, :, None, None], axis=-1)[..., 0]
        Pj = pick(P)  # (rows, zc, R)
        dj = jnp.take_along_axis(d, j[..., None], axis=-1)  # (rows, zc, 1)
        Cj = jnp.take_along_axis(Ct[:, None], j[..., None], axis=-1)
        bb = b.astype(ctype)[..., None]
        G = jnp.concatenate(
            [
                jnp.concatenate([eye + bb[..., None] * s11, Pj.conj()[..., None]], axis=-1),
                jnp.concatenate([-bb * Pj, dj], axis=-1)[..., None, :],
            ],
            axis=-2,
        )
        rhs = jnp.concatenate([bb * s01, Cj], axis=-1)
        yt = jnp.linalg.solve(jnp.swapaxes(G, -1, -2), rhs[..., None])[..., 0]
        y, t = yt[..., :R], yt[..., R:]
        num = Ct[:, None, :M] - jnp.einsum("hzr,hrm->hzm", y, Pc[..., :M])
        w = num * inv[..., :M] + jnp.where(onehot[..., :M], t, 0)
        return jnp.einsum("z,hzm->hm", wgt, w)

    if nchunk == 1:
        s = partial_sum(tuple(x[0] for x in nodes))
    else:
        s = jax.lax.map(partial_sum, nodes).sum(0)
    if conj_sym:
        s = jnp.concatenate([s, s.conj()], axis=-1)
    # C = s (I - dt/2 A) = s (1 - dt/2 Lambda) + dt/2 Σ_r (s · P_r) conj(P_r), first M.
    h = (dt / 2).astype(ctype)[:, None]
    sp = jnp.einsum("hn,hrn->hr", s, P)
    out = s * (1 - h * Lam) + h * jnp.einsum("hr,hrm->hm", sp, Pc)
    return out[:, :M]
