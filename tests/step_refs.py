"""Shared by tests/test_step.py and tests/test_chunked.py: sizes, random systems, and
independent float64 NumPy references of the step-mode systems.

The discrete systems are rebuilt here from the SSM conventions (diagonal closed forms and
block-matrix expm, dense DPLR matrices assembled entry by entry, bilinear solves) and run
through an explicit Python loop; nothing here calls hippox.
"""

import numpy as np
import scipy.linalg

H, M, BSZ, L = 3, 4, 2, 24  # one set of sizes: compiled code is reused across tests
TOL = {np.float64: 1e-10, np.float32: 1e-4}
CDT = {np.float64: np.complex128, np.float32: np.complex64}


def rel_err(a, b):
    a, b = np.asarray(a, np.complex128), np.asarray(b, np.complex128)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def cast(x, dtype):
    """Rounds a float64 NumPy array to `dtype` (complex counterpart for complex x), as NumPy."""
    x = np.asarray(x)
    return x.astype(CDT[dtype] if np.iscomplexobj(x) else dtype)


# ----------------------------------------------------------------------- random systems


def rand_diag(rng, H, M, dtype=np.float64):
    Lam = -rng.uniform(0.1, 1.0, (H, M)) - 1j * rng.uniform(0.0, 4.0, (H, M))
    B = rng.normal(size=(H, M)) + 1j * rng.normal(size=(H, M))
    C = rng.normal(size=(H, M)) + 1j * rng.normal(size=(H, M))
    dt = rng.uniform(0.05, 0.3, H)
    D = rng.normal(size=H)
    return tuple(cast(a, dtype) for a in (Lam, B, C, dt, D))


def rand_dplr(rng, H, M, rank, dtype=np.float64):
    Lam, B, C, dt, D = rand_diag(rng, H, M, np.float64)
    P = 0.5 * (rng.normal(size=(rank, H, M)) + 1j * rng.normal(size=(rank, H, M)))
    return tuple(cast(a, dtype) for a in (Lam, P, B, C, dt, D))


# ----------------------------------------------------------------------- NumPy references


def np_diag_disc(Lam, B, dt, method, L=None):
    """Per-mode discretisation; zoh by the block-matrix exponential (not the closed form)."""
    Lam, B, dt = (np.asarray(a, np.complex128) for a in (Lam, B, dt))
    H, M = Lam.shape
    Ab = np.empty((H, M), complex)
    Bb = np.empty((H, M), complex)
    for h in range(H):
        for m in range(M):
            lam, b, d = Lam[h, m], B[h, m], dt[h]
            if method == "bilinear":
                Ab[h, m] = (1 + d * lam / 2) / (1 - d * lam / 2)
                Bb[h, m] = d * b / (1 - d * lam / 2)
            else:
                E = scipy.linalg.expm(np.array([[lam * d, b * d], [0, 0]]))
                Ab[h, m], Bb[h, m] = E[0, 0], E[0, 1]
                if method == "dss":
                    Bb[h, m] /= Ab[h, m] ** L - 1
    return Ab, Bb


def np_dplr_A(Lam, P):
    """Dense A[h, n, m] = Lambda[h, n] δ_nm - Σ_r P[r, h, n] conj(P[r, h, m]), entry by entry."""
    Lam, P = np.asarray(Lam, complex), np.asarray(P, complex)
    rank, H, M = P.shape
    A = np.zeros((H, M, M), complex)
    for h in range(H):
        for n in range(M):
            for m in range(M):
                A[h, n, m] = (Lam[h, n] if n == m else 0) - sum(
                    P[r, h, n] * np.conj(P[r, h, m]) for r in range(rank)
                )
    return A


def np_bilinear(A, B, dt):
    H, M, _ = A.shape
    Ab = np.empty_like(A)
    Bb = np.empty((H, M), complex)
    for h in range(H):
        lhs = np.eye(M) - dt[h] / 2 * A[h]
        Ab[h] = np.linalg.solve(lhs, np.eye(M) + dt[h] / 2 * A[h])
        Bb[h] = np.linalg.solve(lhs, dt[h] * B[h])
    return Ab, Bb


def np_dplr_ref(Lam, P, B, C, D, dt, conj_sym):
    """The DPLR system in NumPy float64: returns ``run(u, x0=None) -> (y, x)``, Ab, Bb.

    With conj_sym=True the system is the conjugate-closed one on [Lambda, conj Lambda],
    [P, conj P], [B, conj B], [C, conj C] (y = Re(C_full x_full)); ``run`` takes and
    returns the first half of its (conjugate-symmetric) state.
    """
    Lam, P, B, C = (np.asarray(a, np.complex128) for a in (Lam, P, B, C))
    half = Lam.shape[-1]
    if conj_sym:
        Lam, P, B, C = (np.concatenate([a, a.conj()], axis=-1) for a in (Lam, P, B, C))
    Ab, Bb = np_bilinear(np_dplr_A(Lam, P), B, np.asarray(dt, np.float64))

    def run(u, x0=None):
        if x0 is not None and conj_sym:
            x0 = np.concatenate([x0, np.conj(x0)], axis=-1)
        y, x = np_run(Ab, Bb, C, D, u, x0)
        return y, x[..., :half]

    return run, Ab, Bb


def np_run(Ab, Bb, C, D, u, x0=None, scale=1.0):
    """Loop x_k = Ab x_{k-1} + Bb u_k, y_k = Re(scale C x_k) + D u_k; Ab dense or diagonal."""
    Ab, Bb, C = (np.asarray(a, np.complex128) for a in (Ab, Bb, C))
    D, u = np.asarray(D, np.float64), np.asarray(u, np.float64)
    H, N = Bb.shape
    batch = u.shape[:-2]
    x = np.zeros((*batch, H, N), complex) if x0 is None else np.asarray(x0, complex) + 0
    x = np.broadcast_to(x, (*batch, H, N)).copy()
    ys = np.empty(u.shape)
    for l in range(u.shape[-1]):
        ul = u[..., l]
        if Ab.ndim == 3:
            x = np.einsum("hnm,...hm->...hn", Ab, x) + Bb * ul[..., None]
        else:
            x = Ab * x + Bb * ul[..., None]
        ys[..., l] = np.real(scale * np.sum(C * x, -1)) + D * ul
    return ys, x


def rand_state(rng, shape, dtype):
    return cast(rng.normal(size=shape) + 1j * rng.normal(size=shape), dtype)
