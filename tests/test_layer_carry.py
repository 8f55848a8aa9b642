"""Padded batches, carried states, any length, step_rescale and the timescale options.

The pure layer configs (S4D, S4, S5, LSSL) with ``apply(params, u, *, seq_lengths,
initial_state, return_state, step_rescale)``. The identities checked:

* a padded batch gives, at valid positions, what each unpadded sequence gives alone;
  zeros at padding; the state after each sequence's last valid step; the gradient of
  the batch is the sum of the per-sequence gradients;
* chunks with the state passed along give one call (outputs and final state);
  prefill then `step` gives one call; a state made by `step` continues in ``apply``;
* S4 at ``L > l_max`` and every ``step_rescale`` / option against kernels built here
  in float64 NumPy from the documented parameterisation (dense matrices, explicit
  powers), sharing no code with hippox's kernels;
* bad ``seq_lengths`` / ``initial_state`` raise errors naming the argument.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hippox
from hippox._src.krylov import kernel_krylov
from hippox._src.layers.lssl import LSSLConfig
from hippox._src.layers.s4 import S4Config
from hippox._src.layers.s4d import S4DConfig
from hippox._src.layers.s5 import S5Config

H = 3

LAYERS = {
    "S4D": lambda **kw: S4DConfig(H, 6, **kw),
    "S4D-bilinear-opts": lambda **kw: S4DConfig(
        H,
        6,
        disc="bilinear",
        dt_tie=False,
        channels=2,
        dt_transform="softplus",
        bandlimit=0.06,
        **kw,
    ),
    "S4": lambda **kw: S4Config(H, 24, 6, **kw),
    "S4-opts": lambda **kw: S4Config(
        H, 24, 6, dt_tie=False, channels=2, step_mode="dense", bandlimit=0.06, **kw
    ),
    "S5": lambda **kw: S5Config(H, 6, **kw),
    "LSSL": lambda **kw: LSSLConfig(H, 5, **kw),
}
BIDIRECTIONAL = ("S4D", "S4", "S5")


def _inverse_dt(dt, transform):
    return {
        "exp": np.log(dt),
        "softplus": np.log(np.expm1(dt)),
        "sigmoid": np.log(dt / (1 - dt)),
        "relu": dt - 1e-4,
    }[transform]


def _dt(raw, transform):
    raw = np.asarray(raw, np.float64)
    return {
        "exp": np.exp(raw),
        "softplus": np.log1p(np.exp(raw)),
        "sigmoid": 1 / (1 + np.exp(-raw)),
        "relu": np.maximum(raw, 0) + 1e-4,
    }[transform]


def _params(cfg, rng, dtype=jnp.float64):
    """Random leaves (NumPy): Re(Lambda) in [-1, -0.1], dt in [0.05, 0.2], the rest normal."""
    out = {}
    for name, shape in cfg.param_shapes().items():
        if name == "Lambda_re":
            re = -rng.uniform(0.1, 1.0, size=shape)
            x = {"exp": np.log(-re), "clip": re, "softplus": np.log(np.expm1(-re))}[
                cfg.lambda_transform
            ]
        elif name == "Lambda_im":
            x = 3.0 * rng.normal(size=shape)
        elif name == "log_dt":
            x = _inverse_dt(rng.uniform(0.05, 0.2, size=shape), cfg.dt_transform)
        else:
            x = rng.normal(size=shape) * (0.5 if name == "P" else 1.0)
            if isinstance(cfg, LSSLConfig) and name == "C":
                x = x / np.sqrt(cfg.N)
        out[name] = jnp.asarray(x, dtype)
    return out


def _state(cfg, rng, batch, dtype=jnp.float64):
    shape = cfg.initial_state(batch, dtype).shape
    x = rng.normal(size=shape)
    if isinstance(cfg, LSSLConfig):
        return jnp.asarray(x, dtype)
    return jnp.asarray(x + 1j * rng.normal(size=shape), cfg.initial_state((), dtype).dtype)


@functools.cache
def _apply(cfg, **kw):
    return jax.jit(functools.partial(cfg.apply, **kw))


def _close(a, b, rtol):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(np.abs(b).max(), 1e-30)
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


# ------------------------------------------------------------------------ padding


@pytest.mark.parametrize(
    "kind,bidirectional",
    [(k, False) for k in ("S4D", "S4-opts", "S5", "LSSL")]
    + [(k, True) for k in BIDIRECTIONAL]
    + [pytest.param(k, False, marks=pytest.mark.slow) for k in ("S4", "S4D-bilinear-opts")],
)
def test_padded_batch_equals_unpadded_sequences(kind, bidirectional, rng):
    """float32: valid outputs equal the unpadded run (1e-5), padding is 0, states match."""
    cfg = LAYERS[kind](bidirectional=True) if bidirectional else LAYERS[kind]()
    p = _params(cfg, rng, jnp.float32)
    L, lengths = 20, np.array([20, 11, 0])
    u = jnp.asarray(rng.normal(size=(3, L, H)), jnp.float32)
    u = u.at[1, 11:].set(100.0)  # padding content must not matter
    carry = not bidirectional
    x0 = _state(cfg, rng, (3,), jnp.float32) if carry else None
    out = _apply(cfg, **({"return_state": True} if carry else {}))
    res = out(p, u, seq_lengths=jnp.asarray(lengths), **({"initial_state": x0} if carry else {}))
    state, y = res if carry else (None, res)
    assert y.dtype == jnp.float32 and y.shape[:-1] == (3, L)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(np.asarray(y[b, n:]), 0.0)
        if n == 0:
            if carry:
                np.testing.assert_array_equal(np.asarray(state[b]), np.asarray(x0[b]))
            continue
        kw_b = dict(initial_state=x0[b]) if carry else {}
        res_b = out(p, u[b, :n], **kw_b)
        state_b, y_b = res_b if carry else (None, res_b)
        _close(y[b, :n], y_b, 1e-5)
        if carry:
            _close(state[b], state_b, 1e-5)


@pytest.mark.parametrize(
    "kind", ["S4D", "S5", "LSSL", pytest.param("S4-opts", marks=pytest.mark.slow)]
)
def test_padded_gradient_is_sum_of_sequence_gradients(kind, rng):
    cfg = LAYERS[kind]()
    p = _params(cfg, rng)
    L, lengths = 14, (14, 6, 0)
    u = jnp.asarray(rng.normal(size=(3, L, H)))
    w = jnp.asarray(rng.normal(size=(3, L, getattr(cfg, "channels", 1) * H)))
    v = jnp.asarray(rng.normal(size=cfg.initial_state((3,), jnp.float64).shape))

    def loss(p, u, w, v, lengths):
        s, y = cfg.apply(p, u, seq_lengths=lengths, return_state=True)
        return jnp.sum(w * y) + jnp.sum(jnp.real(s) * v)

    grad = jax.jit(jax.grad(loss))
    g = grad(p, u, w, v, jnp.asarray(lengths))
    total = jax.tree.map(jnp.zeros_like, p)
    for b, n in enumerate(lengths):
        if n:
            gb = grad(p, u[b, :n], w[b, :n], v[b], None)
            total = jax.tree.map(jnp.add, total, gb)
    for name in p:
        _close(g[name], total[name], 1e-9)


# ------------------------------------------------------------------------ carried state


@pytest.mark.parametrize(
    "kind,rescale",
    [(k, 0.7) for k in LAYERS]
    + [("S4", 1.0), pytest.param("S4-opts", 1.0, marks=pytest.mark.slow)],
)
def test_chunks_prefill_and_step_equal_one_call(kind, rescale, rng):
    """float64: chunks (one padded) = one call; prefill + steps = one call; step -> apply.

    Every chunk has length 8 and every step loop 14 steps, so each compiles once.
    """
    cfg = LAYERS[kind]()
    p = _params(cfg, rng)
    L, n = 22, 8
    u = jnp.asarray(rng.normal(size=(2, L, H)))
    x0 = _state(cfg, rng, (2,))
    run = _apply(cfg, return_state=True, step_rescale=rescale)
    x_end, y = run(p, u, initial_state=x0)

    # Chunks u[0:8], u[8:14] padded with junk to 8, u[14:22]: the state passes the valid
    # part only.
    x, parts = x0, []
    for a, b in ((0, 8), (8, 14), (14, 22)):
        chunk = jnp.concatenate([u[:, a:b], jnp.full((2, n - (b - a), H), 9.0)], axis=1)
        x, yc = run(p, chunk, initial_state=x, seq_lengths=jnp.full((2,), b - a))
        parts.append(yc[:, : b - a])
        np.testing.assert_array_equal(np.asarray(yc[:, b - a :]), 0.0)
    _close(jnp.concatenate(parts, axis=1), y, 1e-9)
    _close(x, x_end, 1e-9)

    sp = cfg.step_params(p, step_rescale=rescale)

    @jax.jit
    def steps(x, us):
        x, ys = jax.lax.scan(lambda x, uk: cfg.step(sp, x, uk), x, jnp.moveaxis(us, 1, 0))
        return x, jnp.moveaxis(ys, 0, 1)

    # Prefill 8 positions in one call, then step through the other 14.
    full = jnp.full((2,), n)
    xs, _ = run(p, u[:, :n], initial_state=x0, seq_lengths=full)
    x_steps, ys = steps(xs, u[:, n:])
    _close(ys, y[:, n:], 1e-8)
    _close(x_steps, x_end, 1e-8)

    # Step through the first 14, then a state made by step continues in apply.
    x_mid, ys = steps(x0, u[:, : L - n])
    _close(ys, y[:, : L - n], 1e-8)
    x2, y2 = run(p, u[:, L - n :], initial_state=x_mid, seq_lengths=full)
    _close(y2, y[:, L - n :], 1e-8)
    _close(x2, x_end, 1e-8)


# ------------------------------------------------------------------------ float64 references


def _bilinear(A, B, dt):
    Id = np.eye(A.shape[0])
    return np.linalg.solve(Id - dt / 2 * A, Id + dt / 2 * A), np.linalg.solve(
        Id - dt / 2 * A, dt * B
    )


def _cplx(x):
    x = np.asarray(x, np.float64)
    return x[..., 0] + 1j * x[..., 1]


def _lam(cfg, p):
    raw = np.asarray(p["Lambda_re"], np.float64)
    re = {"exp": -np.exp(raw), "softplus": -np.log1p(np.exp(raw)), "clip": np.minimum(raw, -1e-4)}
    return np.repeat(re[cfg.lambda_transform] + 1j * np.asarray(p["Lambda_im"]), H // cfg.n_ssm, 0)


def _band(cfg, Lam, dt):
    if cfg.bandlimit is None:
        return np.ones(Lam.shape)
    step = dt[:, None] if dt.ndim == 1 else dt
    return (step * np.abs(Lam.imag) / (2 * np.pi) < cfg.bandlimit / 2).astype(float)


def ref_s4d_kernel(cfg, p, L, rescale=1.0):
    """(channels, H, L): 2 Re Σ_m C Bb Ab^l with per-mode steps, masked (float64 NumPy)."""
    Lam = _lam(cfg, p)
    B = np.repeat(_cplx(p["B"]), H // cfg.n_ssm, 0)
    C = _cplx(p["C"]).reshape(cfg.channels, H, cfg.M)
    dt0 = _dt(p["log_dt"], cfg.dt_transform)
    C = C * _band(cfg, Lam, dt0)
    dt = (dt0[:, None] if dt0.ndim == 1 else dt0) * rescale
    if cfg.disc == "zoh":
        Ab = np.exp(dt * Lam)
        Bb = (Ab - 1) / Lam * B
    else:
        Ab = (1 + dt * Lam / 2) / (1 - dt * Lam / 2)
        Bb = dt / (1 - dt * Lam / 2) * B
    powers = Ab[..., None] ** np.arange(L)  # (H, M, L)
    return 2 * np.einsum("chm,hm,hml->chl", C, Bb, powers).real


def ref_s4_kernel(cfg, p, L, rescale=1.0):
    """(channels, H, L) from the dense closed system A = diag(Lam) - P^T conj(P) (float64)."""
    Lam = _lam(cfg, p)
    P = np.repeat(_cplx(p["P"]), H // cfg.n_ssm, 1)
    B = np.repeat(_cplx(p["B"]), H // cfg.n_ssm, 0)
    Ct = _cplx(p["C"]).reshape(cfg.channels, H, cfg.M)
    dt = _dt(p["log_dt"], cfg.dt_transform)
    Ct = Ct * _band(cfg, Lam, dt)
    full = lambda x: np.concatenate([x, x.conj()], axis=-1)  # noqa: E731
    K = np.zeros((cfg.channels, H, L))
    for h in range(H):
        A = np.diag(full(Lam[h])) - full(P[:, h]).T @ full(P[:, h]).conj()
        Bh, Ch, step = full(B[h]), full(Ct[:, h]), dt[h]
        if dt.ndim == 2:  # per-state steps: A' = S A S, B' = S B, C' = C S, unit step
            S = np.diag(np.sqrt(full(dt[h]).real))
            A, Bh, Ch, step = S @ A @ S, S @ Bh, Ch @ S, 1.0
        Ab, Bb = _bilinear(A, Bh, step)
        IA = np.eye(len(Bh)) - np.linalg.matrix_power(Ab, cfg.l_max)
        C = np.linalg.solve(IA.T, Ch.T).T  # C = C_tilde (I - Ab^l_max)^{-1}
        Ab, Bb = _bilinear(A, Bh, step * rescale)
        x = Bb
        for n in range(L):
            K[:, h, n] = (C @ x).real
            x = Ab @ x
    return K


def ref_lssl_kernel(cfg, p, L, rescale=1.0):
    A, B = (np.asarray(a) for a in hippox.transition(cfg.measure, cfg.N, dtype=jnp.float64))
    dt = _dt(p["log_dt"], cfg.dt_transform) * rescale
    K = np.zeros((H, L))
    for h in range(H):
        Ab, Bb = _bilinear(A, B, dt[h])
        x = Bb
        for n in range(L):
            K[h, n] = np.asarray(p["C"][h]) @ x
            x = Ab @ x
    return K


@pytest.mark.parametrize("rescale", [1.0, 0.6])
def test_s4_any_length_and_rescale_against_the_dense_system(rescale, rng):
    cfg = S4Config(H, 16, 6)
    p = _params(cfg, rng)
    K = cfg.kernel(p, 40, step_rescale=rescale)  # L > l_max
    _close(K, ref_s4_kernel(cfg, p, 40, rescale)[0], 1e-9)
    u = jnp.asarray(rng.normal(size=(40, H)))
    y = _apply(cfg, step_rescale=rescale)(p, u)
    yref = np.stack([np.convolve(u[:, h], K[h])[:40] for h in range(H)], -1) + p["D"] * u
    _close(y, yref, 1e-9)


def test_s4_long_kernel_against_kernel_naive(rng):
    """L > l_max against hippox.kernel_naive on the dense discretised (real-output) system."""
    cfg = S4Config(H, 8, 4, conj_sym=False)
    p = _params(cfg, rng)
    Lam, P = _lam(cfg, p), _cplx(p["P"])
    B, Ct, dt = _cplx(p["B"]), _cplx(p["C"]), np.exp(np.asarray(p["log_dt"]))
    A = np.stack([np.diag(Lam[h]) - P[:, h].T @ P[:, h].conj() for h in range(H)])
    Ab, Bb = zip(*(_bilinear(A[h], B[h], dt[h]) for h in range(H)), strict=True)
    Ab, Bb = np.stack(Ab), np.stack(Bb)
    IA = np.eye(4) - np.stack([np.linalg.matrix_power(a, cfg.l_max) for a in Ab])
    C = np.stack([np.linalg.solve(IA[h].T, Ct[h]) for h in range(H)])
    K = hippox.kernel_naive(jnp.asarray(Ab), jnp.asarray(Bb), jnp.asarray(C), 33).real
    _close(cfg.kernel(p, 33), K, 1e-9)


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(dt_transform="softplus", dt_tie=False, bandlimit=0.05, channels=2),
        dict(dt_transform="sigmoid", disc="bilinear", n_ssm=1),
        dict(dt_transform="relu", conj_sym=True, bandlimit=0.04),
    ],
)
def test_s4d_options_and_rescale_against_numpy(kw, rng):
    cfg = S4DConfig(H, 8, **kw)
    p = _params(cfg, rng)
    for r in (1.0, 1.7):
        K = np.asarray(cfg.kernel(p, 19, step_rescale=r))
        _close(K.reshape(cfg.channels, H, 19), ref_s4d_kernel(cfg, p, 19, r), 1e-10)
    if cfg.bandlimit is not None:  # the mask is not trivial
        band = _band(cfg, _lam(cfg, p), _dt(p["log_dt"], cfg.dt_transform))
        assert 0 < band.mean() < 1
    u = jnp.asarray(rng.normal(size=(2, 19, H)))
    y = np.asarray(cfg.apply(p, u))
    K = ref_s4d_kernel(cfg, p, 19)
    D = np.asarray(p["D"]).reshape(cfg.channels, H)
    un = np.asarray(u)
    ref = np.zeros((2, 19, cfg.channels, H))
    for j in range(19):  # y_j = sum_{i <= j} K_{j-i} u_i + D u_j
        ref[:, j] = np.einsum("chi,bih->bch", K[..., : j + 1][..., ::-1], un[:, : j + 1])
    ref = ref + D * un[:, :, None, :]
    _close(y, ref.reshape(2, 19, cfg.channels * H), 1e-10)


@pytest.mark.parametrize(
    "kw",
    [dict(dt_tie=False, channels=2), dict(bandlimit=0.05, dt_transform="softplus")],
)
def test_s4_options_against_the_dense_system(kw, rng):
    cfg = S4Config(H, 12, 6, **kw)
    p = _params(cfg, rng)
    for L, r in ((9, 1.0), (20, 0.8)):
        K = np.asarray(cfg.kernel(p, L, step_rescale=r)).reshape(cfg.channels, H, L)
        _close(K, ref_s4_kernel(cfg, p, L, r), 1e-9)


def test_per_state_steps_equal_tied_steps_when_equal(rng):
    for make in (
        lambda t: S4DConfig(H, 6, dt_tie=t),
        lambda t: S4Config(H, 16, 6, dt_tie=t),
    ):
        tied, free = make(True), make(False)
        p = _params(tied, rng)
        q = dict(p, log_dt=jnp.repeat(p["log_dt"][:, None], free.M, axis=1))
        _close(free.kernel(q, 21), tied.kernel(p, 21), 1e-10)
        _close(free.kernel(q, 21, step_rescale=0.5), tied.kernel(p, 21, step_rescale=0.5), 1e-10)


def test_lssl_krylov_kernel_and_rescale(rng):
    cfg = LSSLConfig(H, 5, dt_transform="softplus")
    p = _params(cfg, rng)
    for r in (1.0, 2.5):
        _close(cfg.kernel(p, 37, step_rescale=r), ref_lssl_kernel(cfg, p, 37, r), 1e-10)
    # The doubling kernel equals hippox.kernel_naive for a random complex dense system.
    A = rng.normal(size=(2, 4, 4)) + 1j * rng.normal(size=(2, 4, 4))
    A = A / (1.5 * np.abs(np.linalg.eigvals(A)).max())
    b, c = rng.normal(size=(2, 4)) + 0j, rng.normal(size=(3, 2, 4)) + 0j
    for L in (1, 2, 13, 32):
        _close(kernel_krylov(A, b, c, L), hippox.kernel_naive(A, b, c, L), 1e-12)


def test_dt_initialisations():
    cfg = S4DConfig(4, 6, deterministic=True, dt_min=1e-3, dt_max=1e-1)
    p = cfg.init_params(jax.random.key(0), param_dtype=jnp.float64)
    np.testing.assert_allclose(np.exp(p["log_dt"]), np.geomspace(1e-3, 1e-1, 4), rtol=1e-12)
    cfg = LSSLConfig(4, 6, deterministic=True, dt_transform="softplus")
    p = cfg.init_params(jax.random.key(0), param_dtype=jnp.float64)
    np.testing.assert_allclose(_dt(p["log_dt"], "softplus"), np.geomspace(1e-3, 1e-1, 4))
    for transform in ("softplus", "sigmoid", "relu"):
        cfg = S4DConfig(50, 6, dt_transform=transform, dt_tie=False, dt_min=0.01, dt_max=0.2)
        p = cfg.init_params(jax.random.key(1), param_dtype=jnp.float64)
        assert p["log_dt"].shape == (50, 3)
        dt = _dt(p["log_dt"], transform) - (1e-4 if transform == "relu" else 0)
        assert np.all((dt > 0.01 - 1e-9) & (dt < 0.2 + 1e-9))
        assert np.log(dt).std() > 0.5  # log-uniform, not constant
    default = S4DConfig(3, 6).param_shapes()
    assert default["log_dt"] == (3,) and default["C"] == (3, 3, 2) and default["D"] == (3,)
    with pytest.raises(ValueError, match="deterministic"):
        S4DConfig(3, 6, deterministic=True, dt_tie=False)
    with pytest.raises(ValueError, match="dt_transform"):
        S4Config(3, 8, 6, dt_transform="none")


# ------------------------------------------------------------------------ errors

ERR_LAYERS = {"S4D": S4DConfig(H, 4), "S4": S4Config(H, 8, 4), "S5": S5Config(H, 4),
              "LSSL": LSSLConfig(H, 4)}  # fmt: skip


@pytest.mark.parametrize("kind", list(ERR_LAYERS))
def test_bad_seq_lengths_and_states(kind):
    cfg = ERR_LAYERS[kind]
    p = cfg.init_params(jax.random.key(0))
    u = jnp.ones((2, 6, H))
    bad_lengths = [
        (jnp.array([3]), ValueError, "batch shape"),
        (jnp.array([3.0, 2.0]), TypeError, "integers"),
        (jnp.array([True, False]), TypeError, "integers"),
        (jnp.array([-1, 2]), ValueError, r"\[0, L\]"),
        (jnp.array([7, 2]), ValueError, r"\[0, L\]"),
    ]
    for lengths, err, msg in bad_lengths:
        with pytest.raises(err, match=f"`seq_lengths`.*{msg}"):
            cfg.apply(p, u, seq_lengths=lengths)
    good = cfg.initial_state((2,))
    other = {"S4D": S4DConfig(H, 6), "S4": S4Config(H, 8, 6), "S5": S5Config(H, 6),
             "LSSL": LSSLConfig(H, 6)}[kind].initial_state((2,))  # fmt: skip
    kind_err = good.real if jnp.iscomplexobj(good) else good + 0j
    bad_states = [
        ((good, good), TypeError, "single array"),
        ({"x": good}, TypeError, "single array"),
        (other, ValueError, "shape"),
        (good[:1], ValueError, "shape"),
        (kind_err, TypeError, "complex" if jnp.iscomplexobj(good) else "real"),
    ]
    for state, err, msg in bad_states:
        with pytest.raises(err, match=f"`initial_state`.*{msg}"):
            cfg.apply(p, u, initial_state=state)
    with pytest.raises(ValueError, match="`initial_carry`"):
        cfg.check_state(good, (3,), name="initial_carry")
    with pytest.raises(TypeError, match="dtype"):
        cfg.check_state(good, (2,), param_dtype=jnp.float64)
    assert cfg.check_state(good, (2,), param_dtype=jnp.float32).shape == good.shape
    if kind != "LSSL":
        bi = type(cfg)(**{**_fields(cfg), "bidirectional": True})
        with pytest.raises(ValueError, match="bidirectional"):
            bi.apply(bi.init_params(jax.random.key(0)), u, return_state=True)
    if kind == "S4D":
        dss = S4DConfig(H, 4, disc="dss")
        with pytest.raises(ValueError, match="dss"):
            dss.apply(dss.init_params(jax.random.key(0)), u, seq_lengths=jnp.array([2, 3]))


def _fields(cfg):
    import dataclasses

    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
