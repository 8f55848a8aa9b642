"""Tests of hippox.initializers against the underlying hippox functions and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hippox
from hippox import initializers as I
from hippox._src import initializers as _impl
from hippox._src import parameterization

DET_DIAG = ("legs", "lin", "inv", "inv2", "quad", "real")
MEASURES = ("legs", "legt", "lagt", "fout")


def _pair(x):
    x = np.asarray(x, np.float64)
    return x[..., 0] + 1j * x[..., 1]


def _closed_form(init, N):
    """Half spectra from the S4D formulas, written out independently of hippox."""
    n = np.arange(N // 2)
    return {
        "lin": -0.5 - 1j * np.pi * n,
        "inv": -0.5 - 1j * (N / np.pi) * (N / (2 * n + 1) - 1),
        "inv2": -0.5 - 1j * (N / np.pi) * (N / (n + 1) - 1),
        "quad": -0.5 - 1j * (2 * n + 1) ** 2 / np.pi,
        "real": -(n + 1.0) + 0j,
    }[init]


def _forward_np(raw, transform):
    raw = np.asarray(raw, np.float64)
    if transform == "exp":
        return -np.exp(raw)
    if transform == "softplus":
        return -np.log1p(np.exp(raw))
    return np.minimum(raw, -1e-4)


# ----------------------------------------------------------------------------- Lambda


@pytest.mark.parametrize("init", ("lin", "inv", "inv2", "quad", "real"))
@pytest.mark.parametrize("transform", I.LAMBDA_RE_TRANSFORMS)
def test_lambda_closed_forms(init, transform):
    N, H = 12, 3
    raw = I.lambda_re(init, transform=transform)(None, (H, N // 2), jnp.float64)
    im = I.lambda_im(init)(None, (H, N // 2), jnp.float64)
    want = _closed_form(init, N)
    assert raw.shape == im.shape == (H, N // 2) and raw.dtype == jnp.float64
    np.testing.assert_allclose(
        _forward_np(raw, transform), np.broadcast_to(want.real, (H, 6)), rtol=1e-12
    )
    np.testing.assert_allclose(im, np.broadcast_to(want.imag, (H, 6)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("init", DET_DIAG)
@pytest.mark.parametrize("conj_sym", (True, False))
def test_lambda_equals_diag_init(init, conj_sym):
    N = 8
    M = N // 2 if conj_sym else N
    ref = np.asarray(
        hippox.diag_init(
            init, N, conj_sym=conj_sym, real_scale=1.5, imag_scale=0.5, dtype=jnp.float64
        )
    )
    raw = I.lambda_re(init, transform="softplus", conj_sym=conj_sym, real_scale=1.5)(
        jax.random.key(3), (M,), jnp.float64
    )
    im = I.lambda_im(init, conj_sym=conj_sym, imag_scale=0.5)(None, (M,), jnp.float64)
    lam = I.lambda_from_params(raw, im, transform="softplus")
    assert lam.dtype == jnp.complex128
    np.testing.assert_allclose(lam, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("measure", MEASURES)
def test_lambda_equals_nplr(measure):
    N, H = 10, 2
    ref = np.asarray(hippox.nplr(measure, N, rank=2, dtype=jnp.float64).Lambda)
    raw = I.lambda_re(measure, transform="clip")(None, (H, N // 2), jnp.float64)
    im = I.lambda_im(measure)(None, (H, N // 2), jnp.float64)
    # fout's normal part has Re = 0: stored at the documented floor -1e-4.
    np.testing.assert_allclose(
        raw, np.broadcast_to(np.minimum(ref.real, -1e-4), (H, 5)), rtol=1e-12
    )
    np.testing.assert_allclose(im, np.broadcast_to(ref.imag, (H, 5)), rtol=1e-12, atol=1e-12)


def test_lambda_transforms_roundtrip_and_stay_negative(rng):
    re = -np.exp(rng.uniform(-6, 5, size=50))
    for t in I.LAMBDA_RE_TRANSFORMS:
        raw = parameterization.lambda_re_inverse(re, t)
        np.testing.assert_allclose(
            I.lambda_re_forward(jnp.asarray(raw), t), np.minimum(re, -1e-4), rtol=1e-10
        )
        # any raw value maps to a stable real part, and gradients are finite
        x = jnp.asarray(rng.normal(size=50) * 30)
        assert bool(jnp.all(I.lambda_re_forward(x, t) < 0))
        g = jax.grad(lambda v, t=t: I.lambda_re_forward(v, t).sum())(x)
        assert bool(jnp.all(jnp.isfinite(g)))


def test_lambda_blocks_tile_block_diagonal_init():
    J, N_block = 3, 6
    for conj_sym in (True, False):
        M = J * (N_block // 2 if conj_sym else N_block)
        ref = np.asarray(
            hippox.block_diagonal_init(N_block, J, conj_sym=conj_sym, dtype=jnp.float64).Lambda
        )
        raw = I.lambda_re("legs", transform="exp", conj_sym=conj_sym, blocks=J)(
            None, (M,), jnp.float64
        )
        im = I.lambda_im("legs", conj_sym=conj_sym, blocks=J)(None, (M,), jnp.float64)
        np.testing.assert_allclose(
            I.lambda_from_params(raw, im, transform="exp"), ref, rtol=1e-12, atol=1e-12
        )


def test_lambda_rand_needs_key_and_varies_per_channel():
    init = I.lambda_im("rand")
    with pytest.raises(ValueError, match="`key` must be a jax.random key"):
        init(None, (4,))
    a = init(jax.random.key(0), (3, 5))
    b = init(jax.random.key(0), (3, 5))
    c = init(jax.random.key(1), (3, 5))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a[0], a[1])  # independent draws per channel
    N = 10  # rand: Im in (-pi N/2, 0]
    assert bool(jnp.all((a <= 0) & (a > -np.pi * N / 2)))
    re = I.lambda_re("rand", transform="clip", conj_sym=False)(jax.random.key(0), (2, 6))
    np.testing.assert_allclose(re, -0.5)
    im_full = I.lambda_im("rand", conj_sym=False)(jax.random.key(0), (2, 6))
    np.testing.assert_allclose(im_full[:, 3:], -im_full[:, :3])  # conjugates follow the half


# -------------------------------------------------------------------------------- P, B


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("rank", (2, 3))
def test_p_equals_nplr(measure, rank):
    N, H = 8, 2
    ref = np.asarray(hippox.nplr(measure, N, rank=rank, dtype=jnp.float64).P)
    P = _pair(I.p(measure)(None, (rank, H, N // 2, 2), jnp.float64))
    assert P.shape == (rank, H, N // 2)
    np.testing.assert_allclose(P, np.broadcast_to(ref[:, None], P.shape), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("measure", MEASURES)
def test_full_layout_dplr_is_unitarily_similar_to_hippo(measure, rng):
    # In the full layout diag(Lambda) - P^T conj(P) = V* A V and b = V* B with V unitary, so
    # the transfer function b^H (z - A_dplr)^{-1} b equals B^T (z - A)^{-1} B (well conditioned,
    # unlike eigenvalues of the defective lagt matrix).
    N = 8
    rank = 2 if measure == "legt" else 1
    raw = I.lambda_re(measure, transform="softplus", conj_sym=False)(None, (N,), jnp.float64)
    im = I.lambda_im(measure, conj_sym=False)(None, (N,), jnp.float64)
    lam = np.asarray(I.lambda_from_params(raw, im, transform="softplus"))
    # undo the documented -1e-4 floor: the normal parts of fout and legt have Re = 0
    lam = np.where(np.isclose(lam.real, -1e-4, rtol=1e-9), 1j * lam.imag, lam)
    P = _pair(I.p(measure, conj_sym=False)(None, (rank, N, 2), jnp.float64))
    bt = _pair(I.b(measure, conj_sym=False)(None, (N, 2), jnp.float64))
    A_dplr = np.diag(lam) - P.T @ P.conj()
    A, B = (np.asarray(x) for x in hippox.transition(measure, N, dtype=jnp.float64))
    for z in rng.normal(size=4) * 3 + 1j * rng.normal(size=4) * 3 + 2.0:
        got = bt.conj() @ np.linalg.solve(z * np.eye(N) - A_dplr, bt)
        want = B @ np.linalg.solve(z * np.eye(N) - A, B)
        np.testing.assert_allclose(got, want, rtol=1e-10)
    if measure != "lagt":  # lagt's A is a single Jordan block: eigenvalues ill-conditioned
        ev, ev_ref = np.linalg.eigvals(A_dplr), np.linalg.eigvals(A)
        dist = np.abs(ev[:, None] - ev_ref[None, :])
        assert dist.min(axis=1).max() < 1e-7 and dist.min(axis=0).max() < 1e-7


def test_p_zeros_random_and_rank_errors():
    assert not np.any(np.asarray(I.p("zeros")(None, (2, 3, 4, 2))))
    with pytest.raises(ValueError, match="`key`"):
        I.p("random")(None, (1, 4, 2))
    a = I.p("random", conj_sym=False)(jax.random.key(0), (1, 2, 4, 2))
    np.testing.assert_allclose(_pair(a)[..., 2:], _pair(a)[..., :2].conj())
    with pytest.raises(ValueError, match="`rank` must be >= 2"):
        I.p("legt")(None, (1, 4, 2))
    with pytest.raises(ValueError, match=r"\(rank, M, 2\) or \(rank, H, M, 2\)"):
        I.p("legs")(None, (4, 2))


@pytest.mark.parametrize("init", ("legs", "fout", "lagt"))
def test_b_equals_nplr(init):
    N = 8
    ref = np.asarray(hippox.nplr(init, N, dtype=jnp.float64).B)
    B = _pair(I.b(init)(None, (3, N // 2, 2), jnp.float64))
    np.testing.assert_allclose(B, np.broadcast_to(ref, (3, N // 2)), rtol=1e-12, atol=1e-14)
    Bf = _pair(I.b(init, conj_sym=False)(None, (N, 2), jnp.float64))
    np.testing.assert_allclose(Bf, np.concatenate([ref, ref.conj()]), rtol=1e-12, atol=1e-14)


def test_b_closed_forms_and_random():
    np.testing.assert_array_equal(
        I.b("constant")(None, (2, 3, 2)), np.broadcast_to([1.0, 0.0], (2, 3, 2))
    )
    alt = I.b("alternating")(None, (5, 2))
    np.testing.assert_array_equal(alt[:, 0], [1, -1, 1, -1, 1])
    np.testing.assert_array_equal(alt[:, 1], 0)
    for init in ("constant", "alternating", "legs"):
        ref = hippox.diag_b_init(init, 8, dtype=jnp.float64)
        np.testing.assert_allclose(_pair(I.b(init)(None, (4, 2), jnp.float64)), ref, atol=1e-14)
    rand = I.b("random")
    with pytest.raises(ValueError, match="`key`"):
        rand(None, (3, 2))
    x = _pair(rand(jax.random.key(7), (64, 64, 2)))
    assert abs(np.mean(np.abs(x) ** 2) - 1.0) < 0.1  # E|B|^2 = 1
    assert abs(np.mean(x.real * x.imag)) < 0.05


# -------------------------------------------------------------------------- C, D, dt


def test_c_and_d():
    with pytest.raises(ValueError, match="`key`"):
        I.c()(None, (3, 4, 2))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        I.c()(jax.random.key(0), (3, 4))
    x = _pair(I.c(std=2.0)(jax.random.key(0), (128, 64, 2), jnp.float64))
    assert abs(np.mean(np.abs(x) ** 2) / 4.0 - 1.0) < 0.1
    np.testing.assert_array_equal(I.d("ones")(None, (3,)), 1.0)
    np.testing.assert_array_equal(I.d("zeros")(None, (3,)), 0.0)
    dn = I.d()(jax.random.key(0), (4000,))
    assert abs(float(jnp.std(dn)) - 1.0) < 0.05
    with pytest.raises(ValueError, match="`key`"):
        I.d()(None, (3,))


def test_log_dt_range_and_distribution():
    x = np.asarray(I.log_dt(dt_min=1e-4, dt_max=1e-2)(jax.random.key(0), (5000,), jnp.float64))
    lo, hi = np.log(1e-4), np.log(1e-2)
    assert x.min() >= lo and x.max() <= hi
    assert abs(x.mean() - (lo + hi) / 2) < 0.05 * (hi - lo)  # uniform in log space
    assert x.min() < lo + 0.01 * (hi - lo) and x.max() > hi - 0.01 * (hi - lo)
    x16 = I.log_dt()(jax.random.key(1), (1000,), jnp.bfloat16)
    assert x16.dtype == jnp.bfloat16
    assert float(x16.min()) >= np.log(1e-3) and float(x16.max()) <= np.log(1e-1)
    with pytest.raises(ValueError, match="`dt_max` must be >="):
        I.log_dt(dt_min=0.1, dt_max=0.01)
    with pytest.raises(ValueError, match="`dt_min` must be > 0"):
        I.log_dt(dt_min=0.0)
    with pytest.raises(ValueError, match="`key`"):
        I.log_dt()(None, (3,))


# ------------------------------------------------------------------------------- S5


@pytest.mark.parametrize("conj_sym", (True, False))
def test_s5_b_is_vinv_times_real_b(conj_sym):
    J, N_block, H = 2, 8, 64
    M = J * (N_block // 2 if conj_sym else N_block)
    _, V, Vinv = (
        np.asarray(a)
        for a in hippox.block_diagonal_init(N_block, J, conj_sym=conj_sym, dtype=jnp.float64)
    )
    Bt = _pair(I.s5_b(blocks=J, conj_sym=conj_sym)(jax.random.key(0), (M, H, 2), jnp.float64))
    # Reconstruct the real B in the original basis; V⁻¹ of it must give Bt back.
    B = 2 * (V @ Bt).real if conj_sym else V @ Bt
    if not conj_sym:
        np.testing.assert_allclose(B.imag, 0, atol=1e-12)
        B = B.real
    np.testing.assert_allclose(Vinv @ B, Bt, atol=1e-12)
    N = J * N_block
    assert abs(np.var(B) * N - 1.0) < 0.15  # LeCun normal: variance 1/N
    with pytest.raises(ValueError, match=r"\(M, H, 2\)"):
        I.s5_b(blocks=J)(jax.random.key(0), (M, 2))
    with pytest.raises(ValueError, match="divisible by blocks=3"):
        I.s5_b(blocks=3)(jax.random.key(0), (4, H, 2))


@pytest.mark.parametrize("init", ("trunc_standard_normal", "lecun_normal"))
def test_s5_c_is_real_c_times_v(init):
    J, N_block, H = 2, 6, 200
    M = J * N_block // 2
    _, V, Vinv = (np.asarray(a) for a in hippox.block_diagonal_init(N_block, J, dtype=jnp.float64))
    CV = _pair(I.s5_c(init, blocks=J)(jax.random.key(0), (H, M, 2), jnp.float64))
    C = 2 * (CV @ Vinv).real  # the real C with C V = CV
    np.testing.assert_allclose(C @ V, CV, atol=1e-12)
    want_var = 1.0 if init == "trunc_standard_normal" else 1.0 / (J * N_block)
    assert abs(np.var(C) / want_var - 1.0) < 0.15
    cn = _pair(I.s5_c("complex_normal")(jax.random.key(0), (H, 4, 2)))
    assert abs(np.mean(np.abs(cn) ** 2) - 1.0) < 0.15


# ----------------------------------------------------------------------------- LSSL


def test_transition_initializers():
    A, B = hippox.transition("legt", 5, dtype=jnp.float64)
    np.testing.assert_array_equal(I.transition_a("legt")(None, (5, 5), jnp.float64), A)
    np.testing.assert_array_equal(I.transition_b("legt")(None, (5,), jnp.float64), B)
    with pytest.raises(ValueError, match=r"\(N, N\)"):
        I.transition_a("legs")(None, (5, 4))
    with pytest.raises(ValueError, match="deterministic measure"):
        I.transition_a("random")


# ------------------------------------------------------------------ protocol, errors


def test_dtypes_and_key_none_rules():
    for dtype in (None, jnp.float32, jnp.bfloat16, jnp.float16, jnp.float64):
        x = I.lambda_re("legs")(None, (2, 4), dtype)
        assert x.dtype == (jnp.float32 if dtype is None else dtype)
        assert I.b("legs")(None, (4, 2), dtype).dtype == x.dtype
    # deterministic inits ignore a given key
    k = jax.random.key(9)
    for init in (I.lambda_re("inv"), I.lambda_im("inv"), I.b("legs"), I.p("legs")):
        shape = (
            (1, 4, 2)
            if init.__qualname__.startswith("p.")
            else ((4, 2) if init.__qualname__.startswith("b.") else (4,))
        )
        np.testing.assert_array_equal(init(None, shape), init(k, shape))
    with pytest.raises(ValueError, match="real floating dtype"):
        I.lambda_re("legs")(None, (4,), jnp.complex64)


def test_shape_errors_name_expected_shape():
    with pytest.raises(ValueError, match=r"\(M,\) or \(H, M\)"):
        I.lambda_re("legs")(None, (2, 3, 4))
    with pytest.raises(ValueError, match=r"\(M, 2\) or \(H, M, 2\)"):
        I.b("legs")(None, (3, 4))
    with pytest.raises(ValueError, match="even M"):
        I.lambda_im("lin", conj_sym=False)(None, (5,))
    with pytest.raises(ValueError, match="divisible by blocks=2"):
        I.lambda_im("legs", blocks=2)(None, (5,))
    with pytest.raises(TypeError, match="`shape`"):
        I.lambda_im("legs")(None, (2.5,))
    with pytest.raises(ValueError, match="`init` must be one of"):
        I.lambda_re("nope")
    with pytest.raises(ValueError, match="`transform` must be one of"):
        I.lambda_re("legs", transform="abs")
    with pytest.raises(ValueError, match="`real_scale` must be > 0"):
        I.lambda_re("legs", real_scale=0.0)
    with pytest.raises(TypeError, match="no measure parameters"):
        I.lambda_re("lin", theta=1.0)


def test_host_work_is_cached():
    init = I.lambda_re("inv2", transform="softplus")
    init(None, (3, 7))
    before = _impl._lambda_part_host.cache_info()
    init(None, (5, 7))  # a different H reuses the cached host values
    after = _impl._lambda_part_host.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses
    I.p("legs")(None, (1, 6, 2))
    before = _impl._p_host.cache_info()
    I.p("legs")(None, (1, 2, 6, 2))
    assert _impl._p_host.cache_info().hits == before.hits + 1


def test_random_initializers_under_jit():
    shape = (3, 4, 2)
    a = jax.jit(lambda k: I.c()(k, shape))(jax.random.key(0))
    np.testing.assert_allclose(a, I.c()(jax.random.key(0), shape), rtol=1e-6)
    b = jax.jit(lambda k: I.log_dt()(k, (5,)))(jax.random.key(0))
    np.testing.assert_allclose(b, I.log_dt()(jax.random.key(0), (5,)), rtol=1e-6)
