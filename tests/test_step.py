"""Tests of hippox/_src/step.py: step mode (diagonal, dense and DPLR steps, scan_steps).

References are independent float64 NumPy (tests/step_refs.py): the discrete systems are
rebuilt from the SSM conventions and run through an explicit Python loop. Chunked
processing is tested in tests/test_chunked.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from step_refs import (
    BSZ,
    CDT,
    TOL,
    H,
    L,
    M,
    cast,
    np_bilinear,
    np_diag_disc,
    np_dplr_ref,
    np_run,
    rand_diag,
    rand_dplr,
    rand_state,
    rel_err,
)

import hippox


@functools.partial(jax.jit, static_argnums=0)
def lax_scan_steps(step, params, u, x0):
    """The step function run by a lax.scan written here (not hippox.scan_steps)."""

    def body(x, uk):
        return step(params, x, uk)

    x, ys = jax.lax.scan(body, jnp.asarray(x0), jnp.moveaxis(jnp.asarray(u), -1, 0))
    return jnp.moveaxis(ys, 0, -1), x


# ----------------------------------------------------------------------- diagonal


def _slow_unless(keep: bool):
    """Marks redundant parameter combinations slow (deselected by default) to keep CI fast."""
    return () if keep else (pytest.mark.slow,)


@pytest.mark.parametrize(
    "method, conj_sym, dtype",
    [
        pytest.param(m, c, d, marks=_slow_unless(d == np.float64 or c))
        for m in ("zoh", "bilinear", "dss")
        for c in (True, False)
        for d in (np.float64, np.float32)
    ],
)
def test_diag_step_matches_numpy(rng, method, conj_sym, dtype):
    Lam, B, C, dt, D = rand_diag(rng, H, M, dtype)
    u = cast(rng.normal(size=(BSZ, H, L)), dtype)
    x0 = rand_state(rng, (BSZ, H, M), dtype)
    kw = {"L": 17} if method == "dss" else {}
    p = hippox.diag_step_params(Lam, B, C, dt, D, method=method, conj_sym=conj_sym, **kw)
    assert p.Ab.dtype == CDT[dtype] and p.D.dtype == dtype
    y, x = lax_scan_steps(hippox.diag_step, p, u, x0)
    assert y.dtype == dtype and x.dtype == CDT[dtype]
    Ab, Bb = np_diag_disc(Lam, B, dt, method, L=17)
    y_ref, x_ref = np_run(Ab, Bb, C, D, u, x0, scale=2.0 if conj_sym else 1.0)
    assert rel_err(y, y_ref) < TOL[dtype]
    assert rel_err(x, x_ref) < TOL[dtype]
    y2, x2 = hippox.scan_steps(p, u, x0)
    np.testing.assert_allclose(y2, y, rtol=0, atol=10 * TOL[dtype] * np.abs(y_ref).max())
    np.testing.assert_allclose(x2, x, rtol=0, atol=10 * TOL[dtype] * np.abs(x_ref).max())


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_diag_conj_sym_half_equals_full_system(rng, method):
    Lam, B, C, dt, D = rand_diag(rng, H, M)
    u = rng.normal(size=(BSZ, H, L))
    half = hippox.diag_step_params(Lam, B, C, dt, D, method=method, conj_sym=True)
    full = hippox.diag_step_params(
        np.concatenate([Lam, Lam.conj()], -1),
        np.concatenate([B, B.conj()], -1),
        np.concatenate([C, C.conj()], -1),
        dt,
        D,
        method=method,
        conj_sym=False,
    )
    y_half, _ = hippox.scan_steps(half, u)
    y_full, x_full = hippox.scan_steps(full, u)
    assert rel_err(y_half, y_full) < 1e-12
    # the full conjugate-closed state is conjugate-symmetric, so C x is already real
    assert rel_err(x_full[..., M:], np.conj(x_full[..., :M])) < 1e-12


@pytest.mark.parametrize(
    "method, conj_sym, dtype",
    [
        pytest.param(m, c, d, marks=_slow_unless((m == "zoh" and d == np.float64) or c))
        for m in ("zoh", "bilinear")
        for c in (True, False)
        for d in (np.float64, np.float32)
    ],
)
def test_diag_step_matches_convolution(rng, method, conj_sym, dtype):
    Lam, B, C, dt, D = rand_diag(rng, H, M, dtype)
    u = cast(rng.normal(size=(BSZ, H, L)), dtype)
    p = hippox.diag_step_params(Lam, B, C, dt, D, method=method, conj_sym=conj_sym)
    y_step, _ = lax_scan_steps(hippox.diag_step, p, u, hippox.init_state(p, (BSZ,)))
    K = hippox.kernel_diag(Lam, B, C, dt, L, method=method, conj_sym=conj_sym)
    y_conv = hippox.causal_conv(jnp.asarray(u), K, D=jnp.asarray(D))
    assert rel_err(y_step, y_conv) < TOL[dtype]


# ----------------------------------------------------------------------- DPLR


@pytest.mark.parametrize(
    "rank, conj_sym, dtype",
    [(r, c, np.float64) for r in (1, 2) for c in (True, False)]
    + [(2, True, np.float32), pytest.param(2, False, np.float32, marks=pytest.mark.slow)],
)
def test_dplr_steps_match_numpy_and_each_other(rng, rank, conj_sym, dtype):
    Lam, P, B, C, dt, D = rand_dplr(rng, H, M, rank, dtype)
    u = cast(rng.normal(size=(BSZ, H, L)), dtype)
    x0 = rand_state(rng, (BSZ, H, M), dtype)
    pd = hippox.dplr_step_dense_params(Lam, P, B, C, dt, D, conj_sym=conj_sym)
    pl = hippox.dplr_step_linear_params(Lam, P, B, C, dt, D, conj_sym=conj_sym)
    assert pd.Ab.dtype == CDT[dtype] and pl.G.dtype == CDT[dtype]
    y_d, x_d = lax_scan_steps(hippox.dplr_step_dense, pd, u, x0)
    y_l, x_l = lax_scan_steps(hippox.dplr_step_linear, pl, u, x0)
    assert y_l.dtype == dtype and x_l.dtype == CDT[dtype]
    run, Ab, Bb = np_dplr_ref(Lam, P, B, C, D, dt, conj_sym)
    y_ref, x_ref = run(u, x0)
    for y, x in [(y_d, x_d), (y_l, x_l)]:
        assert rel_err(y, y_ref) < TOL[dtype]
        assert rel_err(x, x_ref) < TOL[dtype]
    assert rel_err(y_l, y_d) < TOL[dtype]
    # the precomputed factors reproduce the (closed) dense discretisation
    assert rel_err(pl.Bb, Bb[:, :M]) < TOL[dtype]
    assert rel_err(pd.Ab, Ab[:, :M, :M]) < TOL[dtype]
    assert (pd.Abc is None and pl.Pbar is None) == (not conj_sym)
    if conj_sym:
        assert rel_err(pd.Abc, Ab[:, :M, M:]) < TOL[dtype]


def test_dplr_without_low_rank_is_the_diagonal_system(rng):
    """P = 0: both DPLR steps equal the bilinear diagonal step (the halves do not couple)."""
    Lam, P, B, C, dt, D = rand_dplr(rng, H, M, 1)
    u = rng.normal(size=(BSZ, H, L))
    y_diag, x_diag = hippox.scan_steps(
        hippox.diag_step_params(Lam, B, C, dt, D, method="bilinear"), u
    )
    for setup in (hippox.dplr_step_dense_params, hippox.dplr_step_linear_params):
        y, x = hippox.scan_steps(setup(Lam, 0 * P, B, C, dt, D), u)
        assert rel_err(y, y_diag) < 1e-12 and rel_err(x, x_diag) < 1e-12


def test_dplr_shared_parameters_broadcast(rng):
    """Lambda (M,), P (rank, M) shared across channels equal their explicit (H, ...) copies."""
    Lam, P, B, C, dt, D = rand_dplr(rng, 1, M, 2)
    u = rng.normal(size=(BSZ, H, L))
    shared = hippox.dplr_step_linear_params(Lam[0], P[:, 0], B[0], C[0], np.full(H, dt[0]), D[0])
    tiled = hippox.dplr_step_linear_params(
        np.repeat(Lam, H, 0),
        np.repeat(P, H, 1),
        np.repeat(B, H, 0),
        np.repeat(C, H, 0),
        np.full(H, dt[0]),
        np.full(H, D[0]),
    )
    assert shared.P.shape == (H, 2, M)
    y1, _ = hippox.scan_steps(shared, u)
    y2, _ = hippox.scan_steps(tiled, u)
    assert rel_err(y1, y2) < 1e-14


@pytest.mark.parametrize("conj_sym", [True, False])
@pytest.mark.parametrize("rank", [1, 2])
def test_dplr_step_matches_kernel_dplr(rng, rank, conj_sym):
    Lam, P, B, C, dt, D = rand_dplr(rng, H, M, rank)
    u = rng.normal(size=(BSZ, H, L))
    pl = hippox.dplr_step_linear_params(Lam, P, B, C, dt, D, conj_sym=conj_sym)
    y_step, _ = hippox.scan_steps(pl, u)
    C_tilde = hippox.dplr_c_tilde(C, Lam, P, dt, L, conj_sym=conj_sym)
    K = hippox.kernel_dplr(Lam, P, B, C_tilde, dt, L, conj_sym=conj_sym)
    y_conv = hippox.causal_conv(jnp.asarray(u), K, D=jnp.asarray(D))
    assert rel_err(y_step, y_conv) < 1e-10


@pytest.mark.parametrize("N", [8])
def test_dplr_hippo_legs_equals_real_system(rng, N):
    """NPLR of LegS reproduces the real bilinear LegS system: the half arrays with
    conj_sym=True (C = c V) and the explicitly closed arrays with conj_sym=False."""
    Lam, P, Bt, V = (np.asarray(a) for a in hippox.nplr("legs", N, dtype=jnp.float64))
    A_real, B_real = (np.asarray(a) for a in hippox.transition("legs", N, dtype=jnp.float64))
    dt = rng.uniform(0.05, 0.2, H)
    C_real = rng.normal(size=(H, N))
    D = rng.normal(size=H)
    Vf = np.concatenate([V, V.conj()], axis=1)  # unitary (N, N)
    Lam_f = np.concatenate([Lam, Lam.conj()])
    P_f = np.concatenate([P, P.conj()], axis=-1)  # (rank, N) = (V* Pᵀ)ᵀ for real P
    B_f = np.concatenate([Bt, Bt.conj()])
    C_f = C_real @ Vf  # y = C x_real = C V x_tilde
    u = rng.normal(size=(BSZ, H, L))
    Ab, Bb = np_bilinear(
        np.broadcast_to(A_real, (H, N, N)).astype(complex), np.broadcast_to(B_real, (H, N)), dt
    )
    y_ref, x_ref = np_run(Ab, Bb, C_real, D, u)
    for setup in (hippox.dplr_step_linear_params, hippox.dplr_step_dense_params):
        y, _ = hippox.scan_steps(setup(Lam_f, P_f, B_f, C_f, dt, D, conj_sym=False), u)
        assert rel_err(y, y_ref) < 1e-10
        p_half = setup(Lam, P, Bt, C_real @ V, dt, D, conj_sym=True)
        y, x = hippox.scan_steps(p_half, u)
        assert rel_err(y, y_ref) < 1e-10
        # the half state is the first half of V_full* x_real
        assert rel_err(x, np.einsum("nm,...n->...m", V.conj(), x_ref)) < 1e-10
    y, x = hippox.forward_chunk_dense(
        hippox.dplr_step_dense_params(Lam, P, Bt, C_real @ V, dt, D), u
    )
    assert rel_err(y, y_ref) < 1e-10


# ----------------------------------------------------------------------- dense


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["real", "complex"])
def test_dense_step_matches_numpy(rng, kind, dtype):
    N, Bsz = M, BSZ
    Ab = rng.normal(size=(H, N, N)) + (1j * rng.normal(size=(H, N, N)) if kind == "complex" else 0)
    Ab = 0.95 * Ab / np.linalg.norm(Ab, 2, axis=(1, 2))[:, None, None]
    Bb = rng.normal(size=(H, N)) + (1j * rng.normal(size=(H, N)) if kind == "complex" else 0)
    C = rng.normal(size=(H, N)) + (1j * rng.normal(size=(H, N)) if kind == "complex" else 0)
    D = rng.normal(size=H)
    Ab, Bb, C, D = (cast(a, dtype) for a in (Ab, Bb, C, D))
    u = cast(rng.normal(size=(Bsz, H, L)), dtype)
    x0 = cast(rng.normal(size=(Bsz, H, N)), dtype)
    p = hippox.dense_step_params(Ab, Bb, C, D)
    x0 = x0.astype(p.Ab.dtype)
    assert (p.Ab.dtype == dtype) == (kind == "real")
    y, x = lax_scan_steps(hippox.dense_step, p, u, x0)
    assert y.dtype == dtype and x.dtype == p.Ab.dtype
    y_ref, x_ref = np_run(Ab, Bb, C, D, u, x0)
    assert rel_err(y, y_ref) < TOL[dtype]
    assert rel_err(x, x_ref) < TOL[dtype]
    assert hippox.init_state(p, (Bsz,)).dtype == p.Ab.dtype


def test_dense_from_discretize_matches_diag(rng):
    """A diagonal system through hippox.discretize + dense_step equals diag_step."""
    Lam, B, C, dt, D = rand_diag(rng, H, M)
    u = rng.normal(size=(BSZ, H, L))
    A = np.stack([np.diag(Lam[h]) for h in range(H)])
    Ab, Bb = hippox.discretize(A, B, dt, method="bilinear")
    y_dense, _ = hippox.scan_steps(hippox.dense_step_params(Ab, Bb, C, D), u)
    p_diag = hippox.diag_step_params(Lam, B, C, dt, D, method="bilinear", conj_sym=False)
    y_diag, _ = hippox.scan_steps(p_diag, u)
    assert rel_err(y_dense, y_diag) < 1e-10


# ----------------------------------------------------------------------- transformations


def test_jit_and_vmap(rng):
    Lam, P, B, C, dt, D = rand_dplr(rng, H, M, 1)
    u = rng.normal(size=(BSZ, H, L))
    x0 = rand_state(rng, (BSZ, H, M), np.float64)
    pdiag = hippox.diag_step_params(Lam, B, C, dt, D)
    pdense = hippox.dplr_step_dense_params(Lam, P, B, C, dt, D)
    plin = hippox.dplr_step_linear_params(Lam, P, B, C, dt, D)
    cases = [
        (hippox.diag_step, pdiag),
        (hippox.dense_step, pdense),
        (hippox.dplr_step_linear, plin),
    ]
    for step, p in cases:
        x_e, y_e = step(p, x0, u[..., 0])
        x_j, y_j = jax.jit(step)(p, x0, u[..., 0])
        x_v, y_v = jax.vmap(step, in_axes=(None, 0, 0))(p, x0, u[..., 0])
        for a, b in [(x_j, x_e), (y_j, y_e), (x_v, x_e), (y_v, y_e)]:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # setup under jit (dt traced) and vmap over a stack of parameter sets
    p_j = jax.jit(lambda dt: hippox.dplr_step_linear_params(Lam, P, B, C, dt, D))(dt)
    for a, b in zip(p_j, plin, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    dts = np.stack([dt, 2 * dt])
    ps = jax.vmap(lambda d: hippox.diag_step_params(Lam, B, C, d, D))(dts)
    y_v, _ = jax.vmap(hippox.scan_steps, in_axes=(0, None))(ps, u)
    y_1, _ = hippox.scan_steps(hippox.diag_step_params(Lam, B, C, 2 * dt, D), u)
    np.testing.assert_allclose(y_v[1], y_1, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------- dtypes and errors


def test_float32_dtypes_and_bf16_input(rng):
    Lam, B, C, dt, D = rand_diag(rng, H, M, np.float32)
    p = hippox.diag_step_params(Lam, B, C, dt, D)
    assert {a.dtype for a in p[:3]} == {np.dtype(np.complex64)} and p.D.dtype == np.float32
    u = jnp.asarray(rng.normal(size=(H, L)), jnp.bfloat16)
    y, x = hippox.forward_chunk_diag(p, u)
    assert y.dtype == np.float32 and x.dtype == np.complex64
    x1, y1 = hippox.diag_step(p, hippox.init_state(p), u[:, 0])
    assert y1.dtype == np.float32 and x1.dtype == np.complex64
    # real float32 dense system keeps a real float32 state
    pr = hippox.dense_step_params(
        np.eye(M, dtype=np.float32) * 0.5,
        np.ones(M, np.float32),
        np.ones(M, np.float32),
        np.ones(H, np.float32),
    )
    assert hippox.init_state(pr).dtype == np.float32
    xr, yr = hippox.dense_step(pr, hippox.init_state(pr), np.ones(H, np.float32))
    assert xr.dtype == np.float32 and yr.dtype == np.float32


def test_init_state():
    p = hippox.diag_step_params(-np.ones(3) + 0j, np.ones(3), np.ones(3), np.ones(2) * 0.1)
    x = hippox.init_state(p, (4, 5))
    assert x.shape == (4, 5, 2, 3) and x.dtype == np.complex128 and not np.any(x)
    with pytest.raises(TypeError, match="`params` must be"):
        hippox.init_state((1, 2), ())
    with pytest.raises(ValueError, match="batch_shape"):
        hippox.init_state(p, (-1,))


def test_errors(rng):
    Lam, P, B, C, dt, D = rand_dplr(rng, 2, 3, 1)
    p = hippox.diag_step_params(Lam, B, C, dt, D)
    x = hippox.init_state(p)
    with pytest.raises(ValueError, match="`method` must be one of"):
        hippox.diag_step_params(Lam, B, C, dt, method="euler")
    with pytest.raises(ValueError, match="`dt` must be finite and > 0"):
        hippox.diag_step_params(Lam, B, C, -dt)
    with pytest.raises(TypeError, match="`dt` must be real"):
        hippox.diag_step_params(Lam, B, C, dt + 0j)
    with pytest.raises(TypeError, match="`conj_sym` must be a bool"):
        hippox.diag_step_params(Lam, B, C, dt, conj_sym=1)
    with pytest.raises(ValueError, match="M=3 modes"):
        hippox.diag_step_params(Lam, B[:, :2], C, dt)
    with pytest.raises(ValueError, match="one channel count H"):
        hippox.diag_step_params(Lam, B, C, np.ones(5))
    with pytest.raises(ValueError, match="must carry the channel axis H"):
        hippox.diag_step_params(Lam[0], B[0], C[0], 0.1)
    with pytest.raises(ValueError, match="`D` must be"):
        hippox.diag_step_params(Lam, B, C, dt, np.ones(3))
    with pytest.raises(TypeError, match="`D` must be real"):
        hippox.diag_step_params(Lam, B, C, dt, D + 1j)
    with pytest.raises(ValueError, match=r"`x` must have shape \(\.\.\., H, M\)"):
        hippox.diag_step(p, x[:, :2], np.ones(2))
    with pytest.raises(ValueError, match="`u` must have shape"):
        hippox.diag_step(p, x, np.ones(3))
    with pytest.raises(TypeError, match="`u` must be real"):
        hippox.diag_step(p, x, np.ones(2) + 0j)
    with pytest.raises(ValueError, match="broadcastable batch shapes"):
        hippox.diag_step(p, np.zeros((4, 2, 3), complex), np.ones((5, 2)))
    with pytest.raises(TypeError, match="must be a DiagStepParams"):
        hippox.diag_step(tuple(p), x, np.ones(2))
    with pytest.raises(ValueError, match="`P` must have shape"):
        hippox.dplr_step_linear_params(Lam, P[0, 0], B, C, dt)
    with pytest.raises(ValueError, match="M=3 modes"):
        hippox.dplr_step_dense_params(Lam, P[..., :2], B, C, dt)
    with pytest.raises(ValueError, match=r"`Ab` must have shape"):
        hippox.dense_step_params(np.ones((2, 3, 4)), np.ones(3), np.ones(3), np.ones(2))
    pr = hippox.dense_step_params(np.eye(3), np.ones(3), np.ones(3), np.ones(2))
    with pytest.raises(TypeError, match="`x` must be real"):
        hippox.dense_step(pr, np.zeros((2, 3), complex), np.ones(2))
    with pytest.raises(TypeError, match="`params` must be"):
        hippox.scan_steps(None, np.ones((2, 4)))
