"""Tests of the SSM layers (pure core hippox._src.layers and the Flax NNX / linen wrappers).

The float64 references below rebuild each layer from its documented parameterisation
with plain NumPy (dense matrices, an explicit loop over time); they share no code with
hippox's kernels, FFT convolutions, scans or step functions.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
from flax import linen as nn
from flax import nnx
from jax.test_util import check_grads

import hippox
import hippox.linen as hlinen
import hippox.nnx as hnnx
from hippox import initializers as I

# --------------------------------------------------------------------------- helpers


def _np(x):
    return np.asarray(x, np.float64)


def _cplx(x):
    x = _np(x)
    return x[..., 0] + 1j * x[..., 1]


def _re_lambda(raw, transform):
    raw = _np(raw)
    return {
        "exp": -np.exp(raw),
        "softplus": -np.log1p(np.exp(raw)),
        "clip": np.minimum(raw, -1e-4),
    }[transform]


def _lam(p, transform):
    return _re_lambda(p["Lambda_re"], transform) + 1j * _np(p["Lambda_im"])


def _groups(x, H, axis=0):
    return np.repeat(x, H // x.shape[axis], axis=axis)


def _run(Ab, Bb, u):
    """x_k = Ab x_{k-1} + Bb u_k for a dense or diagonal Ab; u (L,) -> states (L, n)."""
    x = np.zeros(Bb.shape, np.result_type(Ab, Bb, complex))
    xs = []
    for uk in u:
        x = (Ab @ x if Ab.ndim == 2 else Ab * x) + Bb * uk
        xs.append(x)
    return np.array(xs)


def _run_backward(Ab, Bb, u):
    """z_l = sum_{j>l} Ab^(j-l-1) Bb u_j (the anti-causal part of bidirectional_conv)."""
    z = np.zeros(Bb.shape, np.result_type(Ab, Bb, complex))
    zs = [z]
    for uk in u[:0:-1]:
        z = (Ab @ z if Ab.ndim == 2 else Ab * z) + Bb * uk
        zs.append(z)
    return np.array(zs[::-1])


def _bilinear(A, B, dt):
    Id = np.eye(A.shape[0])
    return np.linalg.solve(Id - dt / 2 * A, Id + dt / 2 * A), np.linalg.solve(
        Id - dt / 2 * A, dt * B
    )


# ------------------------------------------------------------------ NumPy references


def ref_s4d(cfg, p, u):
    H, L = cfg.H, u.shape[0]
    Lam = _groups(_lam(p, cfg.lambda_transform), H)
    B = _groups(_cplx(p["B"]), H)
    dt = np.exp(_np(p["log_dt"]))[:, None]
    if cfg.disc == "bilinear":
        Ab = (1 + dt * Lam / 2) / (1 - dt * Lam / 2)
        Bb = dt / (1 - dt * Lam / 2) * B
    else:
        Ab = np.exp(dt * Lam)
        Bb = (Ab - 1) / Lam * B
        if cfg.disc == "dss":
            Bb = Bb / (Ab**L - 1)
    fac = 2.0 if cfg.conj_sym else 1.0
    y = np.zeros((L, H))
    for h in range(H):
        y[:, h] = fac * (_run(Ab[h], Bb[h], u[:, h]) @ _cplx(p["C"])[h]).real
        if cfg.bidirectional:
            y[:, h] += fac * (_run_backward(Ab[h], Bb[h], u[:, h]) @ _cplx(p["C_bwd"])[h]).real
    return y + _np(p["D"]) * u


def ref_s4(cfg, p, u):
    H, L = cfg.H, u.shape[0]
    Lam = _groups(_lam(p, cfg.lambda_transform), H)
    P = _groups(_cplx(p["P"]), H, axis=1)
    B = _groups(_cplx(p["B"]), H)
    dt = np.exp(_np(p["log_dt"]))
    Ct, Cbt = _cplx(p["C"]), _cplx(p.get("C_bwd", p["C"]))
    if cfg.conj_sym:  # the stored half of the conjugate-closed system: build the whole system
        full = lambda x: np.concatenate([x, x.conj()], axis=-1)  # noqa: E731
        Lam, P, B, Ct, Cbt = full(Lam), full(P), full(B), full(Ct), full(Cbt)
    y = np.zeros((L, H))
    for h in range(H):
        A = np.diag(Lam[h]) - P[:, h].T @ P[:, h].conj()
        Ab, Bb = _bilinear(A, B[h], dt[h])
        # C_tilde = C (I - Ab^l_max)  =>  C = C_tilde (I - Ab^l_max)^{-1}
        M_ = np.eye(A.shape[0]) - np.linalg.matrix_power(Ab, cfg.l_max)
        C = np.linalg.solve(M_.T, Ct[h])
        y[:, h] = (_run(Ab, Bb, u[:, h]) @ C).real
        if cfg.bidirectional:
            Cb = np.linalg.solve(M_.T, Cbt[h])
            y[:, h] += (_run_backward(Ab, Bb, u[:, h]) @ Cb).real
    return y + _np(p["D"]) * u


def ref_s5(cfg, p, u, step_rescale=1.0):
    Lam = _lam(p, cfg.lambda_transform)
    Bt, Ct = _cplx(p["B"]), _cplx(p["C"])
    dt = np.exp(_np(p["log_dt"])) * step_rescale
    if cfg.disc == "zoh":
        Ab = np.exp(dt * Lam)
        Bb = ((Ab - 1) / Lam)[:, None] * Bt
    else:
        Ab = (1 + dt * Lam / 2) / (1 - dt * Lam / 2)
        Bb = (dt / (1 - dt * Lam / 2))[:, None] * Bt
    fac = 2.0 if cfg.conj_sym else 1.0
    x = np.zeros(Lam.shape, complex)
    xs = []
    for uk in u:
        x = Ab * x + Bb @ uk
        xs.append(x)
    y = fac * (np.array(xs) @ Ct.T).real
    if cfg.bidirectional:  # S5 convention: the backward state at l has seen u_l ... u_{L-1}
        x = np.zeros(Lam.shape, complex)
        xb = []
        for uk in u[::-1]:
            x = Ab * x + Bb @ uk
            xb.append(x)
        y += fac * (np.array(xb[::-1]) @ _cplx(p["C_bwd"]).T).real
    return y + _np(p["D"]) * u


def ref_lssl(cfg, p, u):
    A, B = (_np(x) for x in hippox.transition(cfg.measure, cfg.N, dtype=jnp.float64))
    A = _np(p["A"]) if cfg.learn_A else A
    B = _np(p["B"]) if cfg.learn_B else B
    H, L, N = cfg.H, u.shape[0], cfg.N
    y = np.zeros((L, H))
    for h in range(H):
        dt = np.exp(_np(p["log_dt"])[h])
        if cfg.disc == "zoh":
            blk = np.zeros((N + 1, N + 1))
            blk[:N, :N], blk[:N, N] = A * dt, B * dt
            E = scipy.linalg.expm(blk)
            Ab, Bb = E[:N, :N], E[:N, N]
        elif cfg.disc == "bilinear":
            Ab, Bb = _bilinear(A, B, dt)
        else:  # backward_euler
            Ab = np.linalg.inv(np.eye(N) - dt * A)
            Bb = Ab @ (dt * B)
        y[:, h] = (_run(Ab, Bb, u[:, h]) @ _np(p["C"])[h]).real
    return y + _np(p["D"]) * u


# ----------------------------------------------------- configs exercised by the tests

S4D_CASES = [
    dict(H=3, N=6, ssm_init="legs"),
    dict(H=4, N=6, ssm_init="lin", disc="bilinear", n_ssm=2, lambda_transform="softplus"),
    dict(H=2, N=8, ssm_init="inv", disc="dss", conj_sym=False, lambda_transform="clip"),
    dict(H=2, N=4, ssm_init="real", bidirectional=True),
]
# S4: l_max * dt = O(1), the regime S4 is used in. (For l_max * dt * |A| << 1 the map
# C_tilde -> C = C_tilde (I - Ab^l_max)^{-1} is ill-conditioned, which float32 step mode feels.)
_DT = dict(dt_min=0.05, dt_max=0.2)
S4_CASES = [
    dict(H=2, l_max=20, N=6, ssm_init="legs", **_DT),
    dict(H=4, l_max=16, N=6, ssm_init="legt", n_ssm=2, step_mode="dense", **_DT),
    dict(H=2, l_max=18, N=4, ssm_init="fout", rank=2, conj_sym=False, **_DT),
    dict(H=2, l_max=16, N=4, ssm_init="lin", bidirectional=True, **_DT),
]
S5_CASES = [
    dict(H=3, N=8, blocks=2),
    dict(H=2, N=6, disc="bilinear", conj_sym=False, lambda_transform="exp", scan="sequential"),
    dict(H=2, N=4, bidirectional=True, c_init="complex_normal"),
]
LSSL_CASES = [
    dict(H=2, N=4, measure="legs"),
    dict(H=3, N=5, measure="legt", disc="zoh", learn_A=True, learn_B=True),
    dict(H=2, N=3, measure="lagt", disc="backward_euler", learn_A=True),
]

ALL = (
    [("S4D", c) for c in S4D_CASES]
    + [("S4", c) for c in S4_CASES]
    + [("S5", c) for c in S5_CASES]
    + [("LSSL", c) for c in LSSL_CASES]
)
CONFIGS = {
    "S4D": hippox.S4DConfig,
    "S4": hippox.S4Config,
    "S5": hippox.S5Config,
    "LSSL": hippox.LSSLConfig,
}
REFS = {"S4D": ref_s4d, "S4": ref_s4, "S5": ref_s5, "LSSL": ref_lssl}
IDS = [
    f"{k}-{i}"
    for k, i in [("S4D", i) for i in range(4)]
    + [("S4", i) for i in range(4)]
    + [("S5", i) for i in range(3)]
    + [("LSSL", i) for i in range(3)]
]


def _length(kind, kw, rng):
    return kw["l_max"] - 3 if kind == "S4" else int(rng.integers(9, 17))


def _inverse_re(re, transform):
    return {"exp": np.log(-re), "softplus": np.log(np.expm1(-re)), "clip": re}[transform]


def _random_params(kind, cfg, rng, dtype):
    """Random parameters of every leaf (drawn in NumPy: no init code, nothing structured).

    Re(Lambda) in [-1, -0.1], Im(Lambda) ~ N(0, 9), complex B/C/P normal, D normal,
    dt log-uniform (S4: [0.05, 0.2], so that l_max * dt = O(1); else [0.01, 0.2]);
    LSSL's learnable A/B are the HiPPO matrices plus 10% noise.
    """
    lo, hi = (0.05, 0.2) if kind == "S4" else (0.01, 0.2)
    out = {}
    for name, shape in cfg.param_shapes().items():
        if name == "Lambda_re":
            x = _inverse_re(-rng.uniform(0.1, 1.0, size=shape), cfg.lambda_transform)
        elif name == "Lambda_im":
            x = 3.0 * rng.normal(size=shape)
        elif name == "log_dt":
            x = rng.uniform(np.log(lo), np.log(hi), size=shape)
        elif kind == "LSSL" and name in ("A", "B"):
            ref = _np(hippox.transition(cfg.measure, cfg.N, dtype=jnp.float64)[name == "B"])
            x = ref + 0.1 * rng.normal(size=shape) * (1 + np.abs(ref))
        elif kind == "LSSL" and name == "C":
            x = rng.normal(size=shape) / np.sqrt(cfg.N)
        else:  # B, C, C_bwd, P (trailing (re, im) axis), D
            x = rng.normal(size=shape) * (0.5 if name == "P" else 1.0)
        out[name] = jnp.asarray(x, dtype)
    return out


def _setup(kind, kw, rng, dtype=jnp.float64, random=True):
    cfg = CONFIGS[kind](**kw)
    if random:
        return cfg, _random_params(kind, cfg, rng, dtype)
    return cfg, cfg.init_params(jax.random.key(int(rng.integers(1 << 30))), param_dtype=dtype)


# ---------------------------------------------------------- correctness (float64)


# Everything numerical runs under jax.jit: one compilation per test instead of dozens of
# eager op compilations (keeps this file fast on a small CPU), and it exercises jit.


def _apply(cfg, params, u, **kw):
    return jax.jit(functools.partial(cfg.apply, **kw))(params, u)


def _scan_steps(cfg, params, u, **kw):
    @jax.jit
    def run(params, u):
        sp = cfg.step_params(params, **kw)
        x0 = cfg.initial_state(u.shape[:-2], params["D"].dtype)
        _, ys = jax.lax.scan(lambda x, uk: cfg.step(sp, x, uk), x0, jnp.moveaxis(u, -2, 0))
        return jnp.moveaxis(ys, 0, -2)

    return run(params, u)


@pytest.mark.parametrize(("kind", "kw"), ALL, ids=IDS)
def test_conv_and_step_match_numpy_reference_float64(kind, kw, rng):
    cfg, params = _setup(kind, kw, rng)
    L = _length(kind, kw, rng)
    u = rng.normal(size=(L, cfg.H))
    y = _apply(cfg, params, jnp.asarray(u))
    assert y.shape == (L, cfg.H) and y.dtype == jnp.float64
    want = REFS[kind](cfg, params, u)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    if not kw.get("bidirectional"):
        ys = _scan_steps(cfg, params, jnp.asarray(u), **({"L": L} if kind == "S4D" else {}))
        assert ys.dtype == jnp.float64
        np.testing.assert_allclose(ys, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


F32_CASES = [ALL[2], ALL[6], ALL[8], ALL[12]]


@pytest.mark.parametrize(
    ("kind", "kw"), F32_CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(F32_CASES)]
)
def test_conv_equals_step_float32(kind, kw, rng):
    cfg, params = _setup(kind, kw, rng, dtype=jnp.float32)
    L = _length(kind, kw, rng)
    u = jnp.asarray(rng.normal(size=(2, L, cfg.H)), jnp.float32)
    y = _apply(cfg, params, u)
    ys = _scan_steps(cfg, params, u, **({"L": L} if kind == "S4D" else {}))
    assert ys.dtype == y.dtype == jnp.float32
    scale = float(jnp.abs(y).max())
    np.testing.assert_allclose(ys, y, rtol=1e-5, atol=1e-5 * scale)


def test_s4_shorter_inputs_truncate_the_l_max_kernel_longer_ones_work(rng):
    cfg, params = _setup("S4", dict(H=2, l_max=24, N=4), rng)
    u = rng.normal(size=(7, 2))
    np.testing.assert_allclose(
        _apply(cfg, params, jnp.asarray(u)), ref_s4(cfg, params, u), rtol=1e-10, atol=1e-12
    )
    K = jax.jit(cfg.kernel, static_argnums=1)(params, 7)
    K24 = jax.jit(cfg.kernel, static_argnums=1)(params, 24)
    np.testing.assert_allclose(K, K24[:, :7], rtol=1e-12, atol=1e-14)
    # Longer inputs: C is converted from C_tilde(l_max) to C_tilde(L) (no error, exact).
    u = rng.normal(size=(37, 2))
    np.testing.assert_allclose(
        _apply(cfg, params, jnp.asarray(u)), ref_s4(cfg, params, u), rtol=1e-9, atol=1e-11
    )


def test_s5_step_rescale(rng):
    cfg, params = _setup("S5", dict(H=2, N=4), rng)
    u = rng.normal(size=(11, 2))
    y = _apply(cfg, params, jnp.asarray(u), step_rescale=0.5)
    np.testing.assert_allclose(y, ref_s5(cfg, params, u, 0.5), rtol=1e-10, atol=1e-12)
    ys = _scan_steps(cfg, params, jnp.asarray(u), step_rescale=0.5)
    np.testing.assert_allclose(ys, y, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="`step_rescale` must be > 0"):
        cfg.apply(params, jnp.asarray(u), step_rescale=-1.0)


def test_s4d_kernel_is_impulse_response(rng):
    cfg, params = _setup("S4D", dict(H=2, N=6, ssm_init="inv"), rng)
    L = 12
    u = np.zeros((L, 2))
    u[0] = 1.0
    y = np.asarray(_apply(cfg, params, jnp.asarray(u)))
    K = np.asarray(jax.jit(cfg.kernel, static_argnums=1)(params, L))
    np.testing.assert_allclose(y[1:], K.T[1:], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(y[0], K[:, 0] + _np(params["D"]), rtol=1e-10)


def test_initial_parameters_equal_the_initializers():
    layer = hnnx.S4(3, 16, 8, ssm_init="legt", rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(layer.Lambda_im[...], I.lambda_im("legt")(None, (3, 4)))
    np.testing.assert_array_equal(layer.P[...], I.p("legt")(None, (2, 3, 4, 2)))
    lam = hippox.nplr("legt", 8, rank=2).Lambda
    re = I.lambda_re_forward(layer.Lambda_re[...], "exp")
    np.testing.assert_allclose(re, np.broadcast_to(np.minimum(lam.real, -1e-4), (3, 4)), rtol=1e-6)
    s5 = hnnx.S5(2, 8, blocks=2, rngs=nnx.Rngs(0))
    ref = hippox.block_diagonal_init(4, 2).Lambda
    np.testing.assert_allclose(s5.Lambda_re[...], ref.real, rtol=1e-6)
    np.testing.assert_allclose(s5.Lambda_im[...], ref.imag, rtol=1e-6)
    logdt = np.asarray(s5.log_dt[...])
    assert logdt.min() >= np.log(1e-3) and logdt.max() <= np.log(1e-1)


# ------------------------------------------------------------- frameworks: NNX, linen

NNX = {"S4D": hnnx.S4D, "S4": hnnx.S4, "S5": hnnx.S5, "LSSL": hnnx.LSSL}
LINEN = {"S4D": hlinen.S4D, "S4": hlinen.S4, "S5": hlinen.S5, "LSSL": hlinen.LSSL}


def _nnx_layer(kind, kw, **extra):
    kw = dict(kw)
    pos = [kw.pop("H")] + ([kw.pop("l_max")] if kind == "S4" else [])
    return NNX[kind](*pos, **kw, **extra, rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    ("kind", "kw"), [ALL[0], ALL[4], ALL[8], ALL[12]], ids=["S4D", "S4", "S5", "LSSL"]
)
def test_linen_equals_nnx_for_copied_params_jit_vmap(kind, kw, rng):
    L = _length(kind, kw, rng)
    u = jnp.asarray(rng.normal(size=(2, L, kw["H"])), jnp.float32)
    lin = LINEN[kind](**kw)
    variables = jax.jit(lin.init)(jax.random.key(1), u)
    layer = _nnx_layer(kind, kw)
    nnx_call = nnx.jit(lambda m, x: m(x))
    lin_call = jax.jit(lin.apply)
    # NNX -> linen: NNX's own initial parameters, run by the linen module
    y_own = nnx_call(layer, u)
    np.testing.assert_allclose(
        lin_call({"params": layer.ssm_params()}, u), y_own, rtol=1e-6, atol=1e-6
    )
    # same leaf names and shapes in both frameworks; copy linen -> NNX
    state = nnx.state(layer, nnx.Param)
    assert set(state.keys()) == set(variables["params"].keys())
    for k, v in variables["params"].items():
        assert getattr(layer, k)[...].shape == v.shape
        getattr(layer, k)[...] = v
    y = nnx_call(layer, u)
    np.testing.assert_allclose(y, lin_call(variables, u), rtol=1e-6, atol=1e-6)
    assert not np.allclose(y, y_own)  # the copy really changed the NNX parameters
    # vmap over the batch axis (one unbatched sequence per call) gives the batched result
    yv = jax.jit(jax.vmap(lambda x: lin.apply(variables, x)))(u)
    np.testing.assert_allclose(yv, y, rtol=1e-5, atol=1e-6)
    # step mode agrees across frameworks and with the convolution
    carry = lin.initialize_carry((2,))
    np.testing.assert_array_equal(carry, layer.initialize_carry((2,)))
    sp_l = jax.jit(functools.partial(lin.apply, method="setup_step"))(variables)
    sp_n = nnx.jit(lambda m: m.setup_step())(layer)
    for a, b in zip(jax.tree.leaves(sp_l), jax.tree.leaves(sp_n), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    c1, y1 = jax.jit(functools.partial(lin.apply, method="step"))(variables, carry, u[:, 0], sp_l)
    c2, y2 = nnx.jit(lambda m, c, x, sp: m.step(c, x, sp))(layer, carry, u[:, 0], sp_n)
    np.testing.assert_allclose(y1, y2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(c1, c2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(y1, y[:, 0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kind", "kw"),
    [
        ("S4D", dict(H=2, N=4, ssm_init="lin")),
        ("S4", dict(H=2, l_max=8, N=4)),
        ("S5", dict(H=2, N=4, bidirectional=True, lambda_transform="softplus")),
        ("LSSL", dict(H=2, N=3, learn_A=True, learn_B=True)),
    ],
    ids=["S4D", "S4", "S5", "LSSL"],
)
def test_gradients(kind, kw, rng):
    cfg, params = _setup(kind, kw, rng)
    L = kw.get("l_max", 6)
    u = jnp.asarray(rng.normal(size=(L, cfg.H)))
    w = jnp.asarray(rng.normal(size=(L, cfg.H)))

    def loss(p):
        return jnp.sum(w * cfg.apply(p, u))

    loss = jax.jit(loss)
    g = jax.jit(jax.grad(loss))(params)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in g.values())
    assert all(float(jnp.abs(v).max()) > 0 for v in g.values())  # every leaf is used
    check_grads(loss, (params,), order=1, modes=["rev"])


# ------------------------------------------------------------------------ dtypes


@pytest.mark.parametrize("kind", ["S4D", "S4", "S5", "LSSL"])
def test_bfloat16_activations_and_params(kind, rng):
    kw = {"S4D": S4D_CASES[0], "S4": S4_CASES[0], "S5": S5_CASES[0], "LSSL": LSSL_CASES[0]}[kind]
    layer = _nnx_layer(kind, kw, param_dtype=jnp.bfloat16)
    assert all(v.dtype == jnp.bfloat16 for v in layer.ssm_params().values())
    L = _length(kind, kw, rng)
    u = jnp.asarray(rng.normal(size=(2, L, kw["H"])), jnp.bfloat16)
    y = nnx.jit(lambda m, x: m(x))(layer, u)
    assert y.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(y.astype(jnp.float32))))
    # same math in float32 on the same (bf16-rounded) values: agree to bf16 precision
    p32 = {k: v.astype(jnp.float32) for k, v in layer.ssm_params().items()}
    y32 = _apply(layer.config, p32, u.astype(jnp.float32))
    np.testing.assert_allclose(
        y.astype(jnp.float32), y32, rtol=2e-2, atol=2e-2 * float(jnp.abs(y32).max())
    )
    # internals: every FFT / complex op runs in float32 / complex64, never in bf16
    jaxpr = jax.make_jaxpr(lambda x: layer.config.apply(layer.ssm_params(), x))(u)
    for eqn in jaxpr.jaxpr.eqns:
        if eqn.primitive.name in ("fft", "complex", "exp", "cumsum", "dot_general", "mul"):
            for v in eqn.outvars:
                if jnp.issubdtype(v.aval.dtype, jnp.complexfloating):
                    assert v.aval.dtype == jnp.complex64
        if eqn.primitive.name == "fft":
            assert all(v.aval.dtype in (jnp.float32, jnp.complex64) for v in eqn.invars)
    carry = layer.initialize_carry((2,))
    _, yk = nnx.jit(lambda m, c, x: m.step(c, x))(layer, carry, u[:, 0])
    assert yk.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        yk.astype(jnp.float32), y32[:, 0], rtol=2e-2, atol=2e-2 * float(jnp.abs(y32).max())
    )


def test_linen_param_dtype():
    lin = hlinen.S5(H=2, N=4, param_dtype=jnp.bfloat16, dtype=jnp.bfloat16)
    u = jnp.ones((5, 2), jnp.float32)
    v = jax.jit(lin.init)(jax.random.key(0), u)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(v))
    assert lin.apply(v, u).dtype == jnp.bfloat16


# ------------------------------------------------------------------------ errors


def test_input_and_parameter_errors():
    layer = hnnx.S4D(3, 4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\(\.\.\., L, H\) with L >= 1 and H=3"):
        layer(jnp.ones((5, 4)))
    with pytest.raises(ValueError, match=r"\(\.\.\., L, H\)"):
        layer(jnp.ones((3,)))
    with pytest.raises(TypeError, match="real floating"):
        layer(jnp.ones((5, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"\(\.\.\., H\) with H=3"):
        layer.step(layer.initialize_carry(), jnp.ones((4,)))
    cfg = layer.config
    params = layer.ssm_params()
    with pytest.raises(ValueError, match=r"`params\['C'\]` must have shape \(3, 2, 2\)"):
        cfg.apply({**params, "C": jnp.ones((3, 3, 2))}, jnp.ones((5, 3)))
    with pytest.raises(ValueError, match="missing 'log_dt'"):
        cfg.apply({k: v for k, v in params.items() if k != "log_dt"}, jnp.ones((5, 3)))
    with pytest.raises(ValueError, match="`n_ssm` must divide H=3"):
        hippox.S4DConfig(H=3, N=4, n_ssm=2)
    with pytest.raises(ValueError, match="`N` must be even"):
        hippox.S4DConfig(H=3, N=5)
    with pytest.raises(ValueError, match="`disc` must be one of"):
        hippox.S4DConfig(H=3, N=4, disc="euler")
    with pytest.raises(ValueError, match="`ssm_init` must be one of"):
        hippox.S4Config(H=3, l_max=8, N=4, ssm_init="nope")
    with pytest.raises(ValueError, match="`rank` must be >= 2"):
        hippox.S4Config(H=3, l_max=8, N=4, ssm_init="legt", rank=1)
    with pytest.raises(ValueError, match="multiple of 2\\*blocks=4"):
        hippox.S5Config(H=3, N=6, blocks=2)
    with pytest.raises(ValueError, match="`bidirectional` must be False for step mode"):
        hnnx.S4(2, 8, 4, bidirectional=True, rngs=nnx.Rngs(0)).setup_step()
    with pytest.raises(ValueError, match="`L` must be given"):
        hnnx.S4D(2, 4, disc="dss", rngs=nnx.Rngs(0)).setup_step()
    with pytest.raises(TypeError, match="`rngs` must be a flax.nnx.Rngs"):
        hnnx.S4D(2, 4, rngs=0)
    with pytest.raises(ValueError, match="`N` must be even"):  # linen validates at construction
        hlinen.S4D(H=2, N=5)


def test_import_hippox_does_not_import_flax():
    import subprocess
    import sys

    code = "import sys, hippox, hippox.initializers; print('flax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------- optax


def test_optax_labels_multi_transform_nnx():
    layer = hnnx.S4(2, 8, 4, rngs=nnx.Rngs(0))
    labels = hippox.optax_labels(nnx.state(layer, nnx.Param))
    flat = {k: v.get_value() if hasattr(v, "get_value") else v for k, v in labels.items()}
    assert flat == {
        "Lambda_re": "ssm",
        "Lambda_im": "ssm",
        "P": "ssm",
        "B": "ssm",
        "log_dt": "ssm",
        "C": "default",
        "D": "default",
    }
    tx = optax.multi_transform(
        {"ssm": optax.sgd(0.0), "default": optax.sgd(1.0)}, hippox.optax_labels
    )
    opt = nnx.Optimizer(layer, tx, wrt=nnx.Param)
    before = {k: np.asarray(v) for k, v in layer.ssm_params().items()}
    u = jnp.ones((8, 2), jnp.float32)
    grads = nnx.jit(nnx.grad(lambda m: jnp.sum(m(u) ** 2)))(layer)  # op-by-op: ~5x slower
    opt.update(layer, grads)
    after = layer.ssm_params()
    for k in ("Lambda_re", "Lambda_im", "P", "B", "log_dt"):
        np.testing.assert_array_equal(after[k], before[k])  # lr 0 for the 'ssm' group
    for k in ("C", "D"):
        assert not np.allclose(after[k], before[k])


def test_optax_labels_multi_transform_linen():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, u):
            return nn.Dense(3)(hlinen.S4D(H=3, N=4)(u))

    u = jnp.ones((6, 3), jnp.float32)
    params = jax.jit(Net().init)(jax.random.key(0), u)["params"]
    labels = hippox.optax_labels(params)
    assert labels["S4D_0"]["Lambda_re"] == "ssm" and labels["S4D_0"]["C"] == "default"
    assert labels["Dense_0"]["kernel"] == "default"
    tx = optax.multi_transform(
        {"ssm": optax.adam(1e-3), "default": optax.adamw(1e-2, weight_decay=0.1)},
        hippox.optax_labels,
    )
    state = tx.init(params)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(Net().apply({"params": p}, u) ** 2)))(params)
    updates, _ = tx.update(grads, state, params)
    new = optax.apply_updates(params, updates)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(new))
