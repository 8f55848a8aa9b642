"""Tests of hippox/_src/step.py: step mode and chunked processing with a carried state.

References are independent float64 NumPy: the discrete systems are rebuilt here from
the SSM conventions (diagonal closed forms and block-matrix expm, dense DPLR matrices
assembled entry by entry, bilinear solves) and run through an explicit Python loop.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.test_util import check_grads

import hippox

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


@functools.partial(jax.jit, static_argnums=0)
def lax_scan_steps(step, params, u, x0):
    """The step function run by a lax.scan written here (not hippox.scan_steps)."""

    def body(x, uk):
        return step(params, x, uk)

    x, ys = jax.lax.scan(body, jnp.asarray(x0), jnp.moveaxis(jnp.asarray(u), -1, 0))
    return jnp.moveaxis(ys, 0, -1), x


def rand_state(rng, shape, dtype):
    return cast(rng.normal(size=shape) + 1j * rng.normal(size=shape), dtype)


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


# ----------------------------------------------------------------------- chunks


CHUNKS = [7, 1, 7, 9]  # uneven (and few distinct lengths, to compile less), sum 24


def _make(rng, form, dtype):
    """(params, chunk function, NumPy reference run(u, x0=None) -> (y, x))."""
    if form == "diag":
        Lam, B, C, dt, D = rand_diag(rng, H, M, dtype)
        p = hippox.diag_step_params(Lam, B, C, dt, D)
        Ab, Bb = np_diag_disc(Lam, B, dt, "zoh")
        run = functools.partial(np_run, Ab, Bb, C, D, scale=2.0)
        return p, hippox.forward_chunk_diag, lambda u, x0=None: run(u, x0)
    if form in ("dplr", "dplr_full"):
        conj_sym = form == "dplr"
        Lam, P, B, C, dt, D = rand_dplr(rng, H, M, 2, dtype)
        p = hippox.dplr_step_dense_params(Lam, P, B, C, dt, D, conj_sym=conj_sym)
        return p, hippox.forward_chunk_dense, np_dplr_ref(Lam, P, B, C, D, dt, conj_sym)[0]
    Ab = rng.normal(size=(H, M, M))
    Ab = 0.95 * Ab / np.linalg.norm(Ab, 2, axis=(1, 2))[:, None, None]
    Bb, C, D = rng.normal(size=(H, M)), rng.normal(size=(H, M)), rng.normal(size=H)
    Ab, Bb, C, D = (cast(a, dtype) for a in (Ab, Bb, C, D))
    run = functools.partial(np_run, Ab, Bb, C, D)
    return hippox.dense_step_params(Ab, Bb, C, D), hippox.forward_chunk_dense, run


@pytest.mark.parametrize(
    "form, dtype",
    [(f, np.float64) for f in ("diag", "dplr", "dplr_full", "dense")]
    + [("diag", np.float32), ("dplr", np.float32)],
)
def test_chunks_with_carried_state(rng, form, dtype):
    p, chunk_fn, run = _make(rng, form, dtype)
    assert sum(CHUNKS) == L
    u = cast(rng.normal(size=(BSZ, H, L)), dtype)
    x0 = (
        rand_state(rng, (BSZ, H, M), dtype)
        if jnp.iscomplexobj(p.Bb)
        else cast(rng.normal(size=(BSZ, H, M)), dtype)
    )
    y_ref, x_ref = run(u, x0)
    # one long call
    y_one, x_one = chunk_fn(p, u, x0)
    assert y_one.dtype == dtype and x_one.dtype == p.Bb.dtype
    assert rel_err(y_one, y_ref) < TOL[dtype]
    assert rel_err(x_one, x_ref) < TOL[dtype]
    # uneven chunks, carrying the state
    x, ys, start = jnp.asarray(x0), [], 0
    for n in CHUNKS:
        y_c, x = chunk_fn(p, u[..., start : start + n], x)
        ys.append(y_c)
        start += n
    assert rel_err(jnp.concatenate(ys, -1), y_ref) < TOL[dtype]
    assert rel_err(x, x_ref) < TOL[dtype]
    # the step-by-step recurrence
    y_s, x_s = hippox.scan_steps(p, u, x0)
    assert rel_err(y_s, y_one) < TOL[dtype]
    assert rel_err(x_s, x_one) < TOL[dtype]


@pytest.mark.parametrize("form", ["diag", "dplr", "dense"])
def test_chunk_without_state_is_the_convolution(rng, form):
    """x0=None (zeros), a state without batch axes, and broadcasting of batch shapes."""
    p, chunk_fn, run = _make(rng, form, np.float64)
    u = rng.normal(size=(BSZ, H, L))
    y, x = chunk_fn(p, u)
    y_ref, x_ref = run(u)
    assert y.shape == (BSZ, H, L) and x.shape == (BSZ, H, M)
    assert rel_err(y, y_ref) < 1e-10 and rel_err(x, x_ref) < 1e-10
    x0 = np.asarray(hippox.init_state(p)) + rng.normal(size=(H, M))  # shared by the batch
    y, x = chunk_fn(p, u, x0)
    y_ref, x_ref = run(u, x0)
    assert rel_err(y, y_ref) < 1e-10 and rel_err(x, x_ref) < 1e-10


@pytest.mark.parametrize("Lc", [1, pytest.param(16, marks=pytest.mark.slow), 33])
@pytest.mark.parametrize("form", ["diag", "dplr"])
def test_chunk_lengths(rng, form, Lc):
    """Chunk lengths at and around powers of two (the dense Krylov doubling) and L = 1."""
    p, chunk_fn, run = _make(rng, form, np.float64)
    u = rng.normal(size=(H, Lc))
    x0 = rand_state(rng, (H, M), np.float64)
    y, x = jax.jit(chunk_fn)(p, u, x0)
    y_ref, x_ref = run(u, x0)
    assert rel_err(y, y_ref) < 1e-10 and rel_err(x, x_ref) < 1e-10


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
    for chunk_fn, p in [(hippox.forward_chunk_diag, pdiag), (hippox.forward_chunk_dense, pdense)]:
        y_e, x_e = chunk_fn(p, u, x0)
        y_j, x_j = jax.jit(chunk_fn)(p, u, x0)
        y_v, x_v = jax.vmap(chunk_fn, in_axes=(None, 0, 0))(p, u, x0)
        for a, b in [(x_j, x_e), (y_j, y_e), (x_v, x_e), (y_v, y_e)]:
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    # setup under jit (dt traced) and vmap over a stack of parameter sets
    p_j = jax.jit(lambda dt: hippox.dplr_step_linear_params(Lam, P, B, C, dt, D))(dt)
    for a, b in zip(p_j, plin, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    dts = np.stack([dt, 2 * dt])
    ps = jax.vmap(lambda d: hippox.diag_step_params(Lam, B, C, d, D))(dts)
    y_v, _ = jax.vmap(hippox.scan_steps, in_axes=(0, None))(ps, u)
    y_1, _ = hippox.scan_steps(hippox.diag_step_params(Lam, B, C, 2 * dt, D), u)
    np.testing.assert_allclose(y_v[1], y_1, rtol=1e-12, atol=1e-12)


def _split(z):
    return np.real(z), np.imag(z)


def test_grads_diag_chunk_and_step(rng):
    Hs, Ms, Ls = 2, 2, 6
    Lam, B, C, dt, D = rand_diag(rng, Hs, Ms)
    u = rng.normal(size=(Hs, Ls))
    x0 = rand_state(rng, (Hs, Ms), np.float64)

    def loss(lr, li, br, ci, dt, x0r, chunk):
        p = hippox.diag_step_params(lr + 1j * li, br + 0j, ci + 1j, dt, D)
        if chunk:
            y, x = hippox.forward_chunk_diag(p, u, x0r + 0.5j)
        else:
            y, x = hippox.scan_steps(p, u, x0r + 0.5j)
        return jnp.sum(y**2) + jnp.sum(jnp.abs(x) ** 2)

    args = (*_split(Lam), B.real, C.real, dt, x0.real)
    f_chunk = jax.jit(functools.partial(loss, chunk=True))
    check_grads(f_chunk, args, order=1, modes=["rev"], eps=1e-6)
    # the chunked (FFT + Vandermonde) gradient equals the step-by-step one
    grads = [
        jax.jit(jax.grad(functools.partial(loss, chunk=chunk), argnums=range(6)))(*args)
        for chunk in (True, False)
    ]
    for a, b in zip(*grads, strict=True):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_grads_dplr_linear_and_dense_chunk(rng):
    Hs, Ms, Ls = 2, 3, 5
    Lam, P, B, C, dt, D = rand_dplr(rng, Hs, Ms, 1)
    u = rng.normal(size=(Hs, Ls))

    def loss(pr, pi, dt, linear):
        if linear:
            y, _ = hippox.scan_steps(
                hippox.dplr_step_linear_params(Lam, pr + 1j * pi, B, C, dt, D), u
            )
        else:
            y, _ = hippox.forward_chunk_dense(
                hippox.dplr_step_dense_params(Lam, pr + 1j * pi, B, C, dt, D), u
            )
        return jnp.sum(jnp.sin(y))

    args = (*_split(P), dt)
    check_grads(
        jax.jit(functools.partial(loss, linear=True)), args, order=1, modes=["rev"], eps=1e-6
    )
    # the dense closed-system chunk gives the same gradient as the Woodbury step
    grads = [
        jax.jit(jax.grad(functools.partial(loss, linear=linear), argnums=range(3)))(*args)
        for linear in (True, False)
    ]
    for a, b in zip(*grads, strict=True):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


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
    with pytest.raises(ValueError, match="`dt` must be > 0"):
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
    with pytest.raises(TypeError, match="must be a DenseStepParams"):
        hippox.forward_chunk_dense(p, np.ones((2, 4)))
    with pytest.raises(ValueError, match="length L >= 1"):
        hippox.forward_chunk_diag(p, np.ones((2, 0)))
    with pytest.raises(ValueError, match=r"`u` must have shape \(\.\.\., H, L\)"):
        hippox.forward_chunk_diag(p, np.ones((3, 4)))
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
