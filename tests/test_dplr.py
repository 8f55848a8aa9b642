"""Tests of the shared DPLR helpers of hippox/_src/dplr.py (the kernel and C̃ transforms
are tested in tests/test_kernels.py, the DPLR step mode in tests/test_step.py)."""

import numpy as np

from hippox._src import dplr


def _crandn(rng, *shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def test_dplr_matrix_entrywise(rng):
    R, H, M = 2, 3, 4
    Lam, P = _crandn(rng, H, M), _crandn(rng, R, H, M)
    A = np.asarray(dplr.dplr_matrix(Lam, P))
    ref = np.zeros((H, M, M), complex)
    for h in range(H):
        for n in range(M):
            for m in range(M):
                low = sum(P[r, h, n] * np.conj(P[r, h, m]) for r in range(R))
                ref[h, n, m] = (Lam[h, n] if n == m else 0) - low
    np.testing.assert_allclose(A, ref, rtol=1e-13, atol=1e-13)


def test_closed_modes(rng):
    x, y = _crandn(rng, 2, 3), _crandn(rng, 1, 2, 3)
    cx, cy = dplr.closed_modes(x, y)
    np.testing.assert_array_equal(cx, np.concatenate([x, x.conj()], -1))
    np.testing.assert_array_equal(cy, np.concatenate([y, y.conj()], -1))


def test_identity_minus_power_matches_numpy(rng):
    H, M, L = 2, 3, 11
    Lam = -rng.uniform(0.1, 1.0, (H, M)) + 1j * rng.standard_normal((H, M))
    P, dt = 0.5 * _crandn(rng, 1, H, M), rng.uniform(0.05, 0.3, H)
    out = np.asarray(dplr.identity_minus_power(Lam, P, dt, L))
    for h in range(H):
        A = np.diag(Lam[h]) - P[:, h].T @ P[:, h].conj()
        lhs = np.eye(M) - dt[h] / 2 * A
        Ab = np.linalg.solve(lhs, np.eye(M) + dt[h] / 2 * A)
        ref = np.eye(M) - np.linalg.matrix_power(Ab, L)
        np.testing.assert_allclose(out[h], ref, rtol=1e-12, atol=1e-12)
