"""Property tests (hypothesis): shapes and dtypes of the main functions over random sizes,
batch shapes and dtypes, each checked against an independent computation."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import hippox

SETTINGS = settings(deadline=None, max_examples=4, derandomize=True)
DTYPES = st.sampled_from([np.float32, np.float64])


def _cdtype(dtype):
    return np.complex64 if dtype == np.float32 else np.complex128


def _system(seed, H, M, dtype):
    rng = np.random.default_rng(seed)
    Lam = (-rng.uniform(0.1, 1.0, (H, M)) + 1j * rng.standard_normal((H, M))).astype(_cdtype(dtype))
    B = (rng.standard_normal((H, M)) + 1j * rng.standard_normal((H, M))).astype(_cdtype(dtype))
    C = (rng.standard_normal((H, M)) + 1j * rng.standard_normal((H, M))).astype(_cdtype(dtype))
    dt = rng.uniform(0.01, 0.5, H).astype(dtype)
    return Lam, B, C, dt


@SETTINGS
@given(
    H=st.integers(1, 3),
    M=st.integers(1, 4),
    L=st.integers(1, 33),
    dtype=DTYPES,
    method=st.sampled_from(["zoh", "bilinear"]),
    seed=st.integers(0, 2**16),
)
def test_kernel_diag_shape_dtype_and_value(H, M, L, dtype, method, seed):
    Lam, B, C, dt = _system(seed, H, M, dtype)
    K = hippox.kernel_diag(Lam, B, C, dt, L, method=method)
    assert K.shape == (H, L) and K.dtype == dtype
    Ab, Bb = hippox.discretize_diag(
        Lam.astype(np.complex128), B.astype(np.complex128), dt.astype(np.float64), method=method
    )
    ref = 2 * np.real(
        np.einsum(
            "hm,hml->hl",
            np.asarray(C, np.complex128) * np.asarray(Bb),
            np.asarray(Ab)[..., None] ** np.arange(L),
        )
    )
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(
        np.asarray(K, np.float64), ref, rtol=tol, atol=tol * np.abs(ref).max()
    )


@SETTINGS
@given(
    batch=st.lists(st.integers(1, 3), max_size=2),
    H=st.integers(1, 3),
    L=st.integers(1, 40),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_causal_conv_shape_dtype_and_value(batch, H, L, dtype, seed):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((*batch, H, L)).astype(dtype)
    K = rng.standard_normal((H, L)).astype(dtype)
    y = hippox.causal_conv(u, K)
    assert y.shape == (*batch, H, L) and y.dtype == dtype
    ref = np.zeros(u.shape)
    for l in range(L):
        ref[..., l] = np.sum(K[:, : l + 1][:, ::-1].astype(np.float64) * u[..., : l + 1], -1)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(
        np.asarray(y, np.float64), ref, rtol=tol, atol=tol * max(1, np.abs(ref).max())
    )


@SETTINGS
@given(
    H=st.integers(1, 3),
    M=st.integers(1, 4),
    L=st.integers(2, 20),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_step_and_chunk_shapes_dtypes_agree(H, M, L, dtype, seed):
    Lam, B, C, dt = _system(seed, H, M, dtype)
    p = hippox.diag_step_params(Lam, B, C, dt)
    assert p.Ab.dtype == _cdtype(dtype) and p.D.dtype == dtype
    u = np.random.default_rng(seed + 1).standard_normal((2, H, L)).astype(dtype)
    y_scan, x_scan = hippox.scan_steps(p, u)
    y_chunk, x_chunk = hippox.forward_chunk_diag(p, u)
    assert y_scan.shape == y_chunk.shape == (2, H, L) and y_chunk.dtype == dtype
    assert x_scan.shape == x_chunk.shape == (2, H, M) and x_chunk.dtype == _cdtype(dtype)
    tol = 2e-4 if dtype == np.float32 else 1e-9
    scale = max(1.0, float(np.abs(y_scan).max()))
    np.testing.assert_allclose(np.asarray(y_chunk), np.asarray(y_scan), rtol=tol, atol=tol * scale)


@SETTINGS
@given(
    H=st.integers(1, 3),
    rank=st.integers(1, 3),
    L=st.integers(1, 24),
    dtype=DTYPES,
    conj_sym=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_kernel_dplr_matches_dense_recurrence(H, rank, L, dtype, conj_sym, seed):
    M = 3
    Lam, B, C, dt = _system(seed, H, M, dtype)
    rng = np.random.default_rng(seed + 2)
    P = (0.3 * (rng.standard_normal((rank, H, M)) + 1j * rng.standard_normal((rank, H, M)))).astype(
        _cdtype(dtype)
    )
    K = hippox.kernel_dplr(Lam, P, B, C, dt, L, conj_sym=conj_sym)
    assert K.shape == (H, L) and K.dtype == dtype
    # reference: the plain C from C̃ (float64), then the dense step recurrence's kernel
    w = [np.asarray(a).astype(np.complex128) for a in (C, Lam, P)]
    C_plain = hippox.dplr_c_from_tilde(
        w[0], w[1], w[2], dt.astype(np.float64), L, conj_sym=conj_sym
    )
    sp = hippox.dplr_step_dense_params(
        w[1], w[2], np.asarray(B, np.complex128), C_plain, dt.astype(np.float64), conj_sym=conj_sym
    )
    impulse = np.zeros((H, L))
    impulse[:, 0] = 1.0
    ref, _ = hippox.scan_steps(sp, impulse)
    ref = np.asarray(ref)
    tol = 2e-3 if dtype == np.float32 else 1e-8
    np.testing.assert_allclose(
        np.asarray(K, np.float64), ref, rtol=tol, atol=tol * max(1.0, np.abs(ref).max())
    )


@SETTINGS
@given(
    measure=st.sampled_from(["legs", "legt", "lagt", "fout"]),
    N=st.sampled_from([2, 4, 6, 8]),
    dtype=DTYPES,
)
def test_transition_and_nplr_shapes_dtypes(measure, N, dtype):
    A, B = hippox.transition(measure, N, dtype=dtype)
    assert A.shape == (N, N) and B.shape == (N,) and A.dtype == dtype
    Lam, P, Bn, V = hippox.nplr(measure, N, rank=2 if measure == "legt" else 1, dtype=dtype)
    assert Lam.shape == (N // 2,) and V.shape == (N, N // 2) and Lam.dtype == _cdtype(dtype)
    # A + PᵀP = 2 Re(V diag(Lambda) V*)
    Pr = np.asarray(hippox.rank_correction(measure, N, rank=P.shape[0], dtype=np.float64))
    lhs = np.asarray(A, np.float64) + Pr.T @ Pr
    Vn, Ln = np.asarray(V, np.complex128), np.asarray(Lam, np.complex128)
    rhs = 2 * np.real(Vn @ np.diag(Ln) @ Vn.conj().T)
    tol = 1e-3 if dtype == np.float32 else 1e-8
    np.testing.assert_allclose(lhs, rhs, atol=tol * max(1.0, np.abs(lhs).max()))
