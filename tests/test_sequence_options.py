"""The reference's SequenceModel block options (gate, bottleneck, final_act, residual kinds,
drop path, tied dropout) and BatchNorm, in NNX, linen, Haiku and Equinox.

The block maths is checked against a float64 NumPy forward written here from the
reference's formulas (the SSM layer itself is used as a black box: it is tested
elsewhere); the four frameworks are checked to agree for the same parameters.
"""

import equinox as eqx
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from flax import nnx

import hippox.equinox
import hippox.haiku
import hippox.linen
import hippox.nnx
from hippox._src.layers import backbone

H, N, L = 4, 4, 8
D_IN, D_OUT = 3, 2


# ----------------------------------------------------------------------------- NumPy reference


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_gelu(x):
    return 0.5 * x * (1.0 + scipy.special.erf(x / np.sqrt(2.0)))


NP_ACTS = {
    None: lambda x: x,
    "id": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "gelu": np_gelu,
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "silu": lambda x: x * np_sigmoid(x),
    "sigmoid": np_sigmoid,
    "softplus": lambda x: np.log1p(np.exp(x)),
    "sqrelu": lambda x: np.maximum(x, 0.0) ** 2,
    "laplace": lambda x: 0.5 * (1.0 + scipy.special.erf((x - 0.707107) / (0.282095 * np.sqrt(2)))),
}


def np_act(name, x):
    if name is not None and name.startswith("glu"):
        a, b = np.split(x, 2, axis=-1)
        return a * (np_sigmoid(b) if name == "glu" else NP_ACTS[name[4:]](b))
    return NP_ACTS[name](x)


def np_dense(p, x):
    return x @ p["kernel"] + p["bias"]


def np_layer_norm(p, x, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def np_residual(kind, kw, i_layer, x, y, P, i):
    """The reference's residual registry, written out (i_layer = i + 1)."""
    if kind in (None, "F"):
        return y
    if kind == "R":
        return kw.get("alpha", 1.0) * x + kw.get("beta", 1.0) * y
    if kind == "A":
        return kw.get("alpha", 1.0) * x + P["residual_affine"][i] * y
    if kind == "D":
        beta = i_layer ** (-kw.get("power", 0.5))
        alpha = np.sqrt(1 - beta**2) if kw.get("l2", True) else 1 - beta
        return alpha * x + beta * y
    assert kind == "H"
    if kw.get("elemwise", False):
        wy = P["residual_wy"][i] * y
    else:
        wy = np_dense(P["residual_wy"][i], y)
    r = np_sigmoid(np_dense(P["residual_wx"][i], x) + wy)
    s = 1.732 if kw.get("scaling_correction", False) else 1.0
    return s * (1 - r) * x + r * wy


def np_forward(model, P, u, cfg, n_layers):
    """float64 forward (pooling None, evaluation) of the block described in the reference."""
    prenorm = cfg.get("prenorm", True)
    gate, bottleneck = cfg.get("gate"), cfg.get("bottleneck")
    final_act = cfg.get("final_act", "id")
    kind = backbone.RESIDUALS.get(cfg.get("residual", "R"))
    kw = cfg.get("residual_kwargs", {})
    x = np_dense(P["encoder"], u)
    for i in range(n_layers):
        z = np_layer_norm(P["norms"][i], x) if prenorm else x
        if gate:
            v = np_act(cfg.get("gate_act"), np_dense(P["input_gates"][i], z))
        if bottleneck:
            z = np_dense(P["input_linears"][i], z)
        z = np.asarray(model.layers[i](jnp.asarray(z)))  # the SSM layer (tested elsewhere)
        z = np_gelu(z)
        if gate:
            z = np_dense(P["output_gates"][i], z) * v
        z = np_act(cfg.get("mult_act"), z)
        if final_act is not None:
            z = np_act(final_act, np_dense(P["mixers"][i], z))
        x = np_residual(kind, kw, i + 1, x, z, P, i)
        if not prenorm:
            x = np_layer_norm(P["norms"][i], x)
    if prenorm:
        x = np_layer_norm(P["final_norm"], x)
    return np_dense(P["decoder"], x)


# ----------------------------------------------------------------------------- helpers


def _nnx_model(cfg, *, seed=0, n_layers=2, pooling=None, param_dtype=jnp.float64, **extra):
    return hippox.nnx.SequenceModel(
        D_IN,
        D_OUT,
        d_model=H,
        n_layers=n_layers,
        layer_kwargs={"N": N},
        pooling=pooling,
        param_dtype=param_dtype,
        rngs=nnx.Rngs(seed),
        **cfg,
        **extra,
    )


def _perturb(model, rng, scale=0.3):
    """Random non-layer parameters (biases included), so every term of the block counts."""
    state = nnx.state(model, nnx.Param)
    pure = nnx.to_pure_dict(state)
    for k, v in pure.items():
        if k != "layers":
            pure[k] = jax.tree.map(
                lambda a: a + scale * rng.normal(size=a.shape).astype(a.dtype), v
            )
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    return jax.tree.map(np.asarray, pure)


def _to_linen(tree):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v and all(isinstance(i, int) for i in v):
            out.update({f"{k}_{i}": sub for i, sub in v.items()})
        else:
            out[k] = v
    return out


def _to_haiku(tree, name="sequence_model"):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v and all(isinstance(i, int) for i in v):
            for i, sub in v.items():
                if isinstance(sub, dict):
                    out[f"{name}/~/{k}_{i}"] = sub
                else:  # a plain parameter array of the model itself
                    out.setdefault(name, {})[f"{k}_{i}"] = sub
        else:
            out[f"{name}/~/{k}"] = v
    return out


def _u(rng, B=2, length=L):
    return jnp.asarray(rng.normal(size=(B, length, D_IN)))


# ----------------------------------------------------------------------------- block maths

NUMERIC_CASES = {
    "gate": dict(gate=2, gate_act="silu", mult_act="gelu", final_act="glu"),
    "gate+bottleneck": dict(gate=3, bottleneck=2, gate_act="glu-tanh", final_act="relu"),
    "bottleneck postnorm": dict(bottleneck=4, final_act="laplace", prenorm=False),
    "None": dict(residual=None, final_act=None),
    "H": dict(residual="H", final_act="elu"),
    "D": dict(residual="D", final_act="softplus"),
    "A": dict(residual="A", residual_kwargs={"scalar": False, "gamma": 0.5, "beta": 0.7}),
}

RESIDUAL_CASES = [
    ("R", {}),
    ("residual", {"alpha": 0.5, "beta": 2.0}),
    ("R", {"alpha": 0.0}),
    ("F", {}),
    ("feedforward", {}),
    (None, {}),
    ("H", {}),
    ("highway", {"elemwise": True, "scaling_correction": True}),
    ("D", {}),
    ("decay", {"power": 0.7, "l2": False}),
    ("A", {}),
    ("affine", {"alpha": 0.3, "scalar": False}),
]


@pytest.mark.parametrize(("name", "kwargs"), RESIDUAL_CASES)
def test_residual_kinds_match_numpy(name, kwargs, rng):
    """Every residual kind and option of the reference's registry, for blocks 0 and 2."""
    opts = backbone.check_options(
        d_output=D_OUT,
        d_model=H,
        n_layers=3,
        layer="s4d",
        layer_kwargs=None,
        l_max=None,
        prenorm=True,
        norm="layer",
        dropout=0.0,
        activation="gelu",
        pooling=None,
        residual=name,
        residual_kwargs=kwargs,
    )
    wiring = backbone.Wiring.of(opts)
    specs = backbone.block_specs(opts)
    P = {}
    for part, per_block in specs.items():
        if part == "mixers":
            continue
        P[part] = {
            i: {"kernel": rng.normal(size=sp), "bias": rng.normal(size=sp.d_out)}
            if isinstance(sp, backbone.DenseSpec)
            else rng.normal(size=sp.shape)
            for i, sp in enumerate(per_block)
        }
    x, y = rng.normal(size=(2, L, H)), rng.normal(size=(2, L, H))
    kind = backbone.RESIDUALS.get(name)
    for i in (0, 2):
        got = backbone.residual(
            wiring,
            i,
            jnp.asarray(x),
            jnp.asarray(y),
            lambda part, i, z: backbone.dense(P[part][i], z),
            lambda part, i: jnp.asarray(P[part][i]),
        )
        ref = np_residual(kind, kwargs, i + 1, x, y, P, i)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", list(NUMERIC_CASES))
def test_block_matches_float64_numpy(case, rng):
    cfg = NUMERIC_CASES[case]
    model = _nnx_model(cfg)
    model.eval()
    if case == "A":  # the reference's initialisation beta * i_layer ** -gamma
        init = nnx.to_pure_dict(nnx.state(model, nnx.Param))["residual_affine"]
        for i in range(2):
            np.testing.assert_allclose(init[i], np.full(H, 0.7 * (i + 1) ** -0.5), rtol=1e-15)
    P = _perturb(model, rng)
    u = _u(rng)
    y = model(u)
    ref = np_forward(model, P, np.asarray(u), cfg, 2)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-9, atol=1e-11)


def test_activation_names_match_numpy(rng):
    x = rng.normal(size=(3, 6)) * 2
    aliases = {"identity": "id", "linear": "id", "none": "id", "swish": "silu", "relu2": "sqrelu"}
    for name in backbone.FINAL_ACTS:
        ref_name = aliases.get(name, name)
        if ref_name.startswith("glu-"):
            ref_name = "glu-" + aliases.get(ref_name[4:], ref_name[4:])
        got = np.asarray(backbone.activation(name, jnp.asarray(x)))
        np.testing.assert_allclose(got, np_act(ref_name, x), rtol=1e-12, atol=1e-14, err_msg=name)
    assert len(backbone.FINAL_ACTS) == 2 * len(backbone.ACTIVATION_NAMES) + 1


# ----------------------------------------------------------------------------- frameworks

FRAMEWORK_CASES = {
    "gate+bottleneck+affine": dict(
        gate=2,
        bottleneck=2,
        gate_act="sigmoid",
        mult_act="tanh",
        final_act="glu-tanh",
        residual="A",
        residual_kwargs={"scalar": False},
        pooling="mean",
    ),
    "highway elemwise postnorm": dict(
        residual="H",
        residual_kwargs={"elemwise": True},
        prenorm=False,
        final_act="gelu",
        pooling="last",
    ),
}


@pytest.mark.parametrize(
    "case",
    [
        "gate+bottleneck+affine",
        pytest.param("highway elemwise postnorm", marks=pytest.mark.slow),
    ],
)
def test_frameworks_agree(case, rng):
    cfg = dict(FRAMEWORK_CASES[case])
    pooling = cfg.pop("pooling")
    kw = dict(d_model=H, n_layers=2, layer_kwargs={"N": N}, pooling=pooling, **cfg)
    model = hippox.nnx.SequenceModel(D_IN, D_OUT, **kw, rngs=nnx.Rngs(0))
    model.eval()
    P = _perturb(model, rng)
    P = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), P)
    u = jnp.asarray(rng.normal(size=(2, L, D_IN)), jnp.float32)
    n = jnp.asarray([L, 5])
    carry, y = model(u, seq_lengths=n, return_carry=True)
    tol = dict(rtol=2e-5, atol=2e-6)

    lin = hippox.linen.SequenceModel(D_OUT, **kw, deterministic=True)
    lin_init = lin.init(jax.random.key(0), u)["params"]
    assert jax.tree.map(jnp.shape, lin_init) == jax.tree.map(jnp.shape, _to_linen(P))
    c_l, y_l = lin.apply({"params": _to_linen(P)}, u, seq_lengths=n, return_carry=True)
    np.testing.assert_allclose(y_l, y, **tol)

    t = hk.without_apply_rng(
        hk.transform(
            lambda u: hippox.haiku.SequenceModel(D_IN, D_OUT, **kw)(
                u, seq_lengths=n, return_carry=True
            )
        )
    )
    hk_init = t.init(jax.random.key(0), u)
    assert jax.tree.map(jnp.shape, hk_init) == jax.tree.map(jnp.shape, _to_haiku(P))
    c_h, y_h = t.apply(_to_haiku(P), u)
    np.testing.assert_allclose(y_h, y, **tol)

    e = hippox.equinox.SequenceModel(D_IN, D_OUT, **kw, inference=True, key=jax.random.key(0))
    assert jax.tree.map(jnp.shape, e.params) == jax.tree.map(jnp.shape, P)
    e = eqx.tree_at(lambda m: m.params, e, P)
    c_e, y_e = jax.vmap(lambda u, n: e(u, seq_lengths=n, return_carry=True))(u, n)
    np.testing.assert_allclose(y_e, y, **tol)
    for c in (c_l, c_h, c_e):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **tol), c, carry)

    # step mode continues the carry, the same in NNX and Equinox
    u_k = jnp.asarray(rng.normal(size=(2, D_IN)), jnp.float32)
    _, yk = model.step(carry, u_k)
    _, yk_e = jax.vmap(lambda c, x: e.step(c, x))(c_e, u_k)
    np.testing.assert_allclose(yk_e, yk, **tol)


# ----------------------------------------------------------------------------- convention


@pytest.mark.slow  # the wiring is shared; test_sequence.py checks it for the default block
def test_calling_convention_with_options(rng):
    """Padded = unpadded, chunked = one call, prefill + step = one call (gate, bottleneck,
    highway, drop path and tied dropout in evaluation mode)."""
    cfg = dict(
        gate=2,
        bottleneck=2,
        mult_act="gelu",
        final_act="glu",
        residual="H",
        dropout=0.3,
        drop_path=0.3,
        tie_dropout=True,
    )
    model = _nnx_model(cfg, deterministic=True)
    _perturb(model, rng)
    u = _u(rng)
    y = model(u)
    tol = dict(rtol=1e-10, atol=1e-12)
    # padded = unpadded
    y_pad = model(u, seq_lengths=jnp.asarray([L, 5]))
    np.testing.assert_allclose(y_pad[1, :5], model(u[1:, :5])[0], **tol)
    np.testing.assert_array_equal(y_pad[1, 5:], 0.0)
    # chunked = one call
    c, y1 = model(u[:, :3], return_carry=True)
    c, y2 = model(u[:, 3:6], initial_carry=c, return_carry=True)
    np.testing.assert_allclose(jnp.concatenate([y1, y2], 1), y[:, :6], **tol)
    # prefill + step = one call
    for k in range(6, L):
        c, y_k = model.step(c, u[:, k])
        np.testing.assert_allclose(y_k, y[:, k], **tol)


# ----------------------------------------------------------------------------- dropout


def test_dropout_broadcast_dims(rng):
    x = jnp.asarray(rng.normal(size=(64, 16, 8)) + 3.0)  # no zeros in x
    rate = 0.25
    tied = backbone.dropout(x, rate, jax.random.key(1), backbone.broadcast_dims("dropout", True))
    m = np.asarray(tied / x)
    np.testing.assert_allclose(m, m[:, :1, :] * np.ones_like(m), rtol=1e-12)  # shared over L
    assert set(np.unique(np.round(m, 12))) <= {0.0, round(1 / (1 - rate), 12)}
    assert abs((m[:, 0] == 0).mean() - rate) < 0.05
    path = backbone.dropout(x, rate, jax.random.key(2), backbone.broadcast_dims("drop_path", False))
    m = np.asarray(path / x)
    np.testing.assert_allclose(m, m[:, :1, :1] * np.ones_like(m), rtol=1e-12)  # per sequence
    assert 0 < (m[:, 0, 0] == 0).sum() < 64
    untied = np.asarray(backbone.dropout(x, rate, jax.random.key(3)) / x)
    assert np.any(untied[:, 0] != untied[:, 1])


def _branch_out(model, P, u, y):
    """The block's branch after dropout, recovered through the (square) decoder, and g."""
    g = np.asarray(jax.nn.gelu(model.layers[0](model.encoder(u)), approximate=False))
    W, b = P["decoder"]["kernel"], P["decoder"]["bias"]
    return (np.asarray(y) - b) @ np.linalg.inv(W), g


def _check_mask(x, g, keep, axes):
    """Every entry of ``x`` is ``keep * g`` or 0, with one choice shared over ``axes``.

    Returns the number of groups dropped and kept (groups where ``g`` is too small to
    tell count as neither).
    """
    is_keep = np.isclose(x, keep * g, rtol=1e-7, atol=1e-10).all(axis=axes)
    is_drop = np.isclose(x, 0.0, atol=1e-10).all(axis=axes)
    assert np.all(is_keep | is_drop)
    return int((is_drop & ~is_keep).sum()), int((is_keep & ~is_drop).sum())


@pytest.mark.slow  # CI keeps test_dropout_broadcast_dims (the masks' shapes)
def test_tied_dropout_and_drop_path_in_models(rng):
    """Training masks: tied over L (both dropouts), per sequence (drop path); NNX and Equinox."""
    cfg = dict(norm=None, residual="F", final_act=None, dropout=0.4, tie_dropout=True)
    kw = dict(d_model=H, n_layers=1, layer_kwargs={"N": N}, pooling=None, **cfg)
    kw["param_dtype"] = jnp.float64
    model = hippox.nnx.SequenceModel(D_IN, H, **kw, rngs=nnx.Rngs(0))
    P = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    u = _u(rng, B=16)
    keep = 1 / 0.6**2  # two tied dropouts in a row: kept entries scaled 1/(1-p)^2
    x, g = _branch_out(model, P, u, model(u))
    dropped, kept = _check_mask(x, g, keep, axes=1)  # shared over L
    assert dropped > 0 and kept > 0

    e = hippox.equinox.SequenceModel(D_IN, H, **kw, key=jax.random.key(0))
    e = eqx.tree_at(lambda mm: mm.params, e, jax.tree.map(jnp.asarray, P))
    keys = jax.random.split(jax.random.key(5), 16)
    x, g = _branch_out(model, P, u, jax.vmap(lambda u, k: e(u, key=k))(u, keys))
    dropped, kept = _check_mask(x, g, keep, axes=1)
    assert dropped > 0 and kept > 0

    # drop path alone: each sequence keeps its whole branch (scaled 1/(1-p)) or none of it
    kw.update(dropout=0.0, drop_path=0.5, tie_dropout=False)
    model = hippox.nnx.SequenceModel(D_IN, H, **kw, rngs=nnx.Rngs(1))
    P = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    x, g = _branch_out(model, P, u, model(u))
    dropped, kept = _check_mask(x, g, 2.0, axes=(1, 2))  # per sequence
    assert dropped > 0 and kept > 0
    model.eval()  # evaluation: deterministic, the plain branch
    x, g = _branch_out(model, P, u, model(u))
    np.testing.assert_allclose(x, g, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_haiku_dropout_modes(rng):
    kw = dict(d_model=H, n_layers=1, layer_kwargs={"N": N}, dropout=0.3, drop_path=0.3)
    kw["tie_dropout"] = True
    t = hk.transform(lambda u, tr: hippox.haiku.SequenceModel(D_IN, D_OUT, **kw)(u, is_training=tr))
    u = jnp.asarray(rng.normal(size=(4, L, D_IN)), jnp.float32)
    params = t.init(jax.random.key(0), u, False)
    y0 = t.apply(params, None, u, False)
    np.testing.assert_array_equal(y0, t.apply(params, None, u, False))
    y1, y2 = (t.apply(params, jax.random.key(k), u, True) for k in (1, 2))
    assert not np.allclose(y1, y2) and not np.allclose(y1, y0)


# ----------------------------------------------------------------------------- BatchNorm


def test_batch_norm_function_matches_numpy(rng):
    x = rng.normal(size=(3, 5, 4)) * 2 + 1
    n = np.array([5, 2, 0])
    mask = np.arange(5)[None, :] < n[:, None]
    p = {"scale": rng.normal(size=4), "bias": rng.normal(size=4)}
    stats = (rng.normal(size=4), rng.uniform(0.5, 2, size=4))
    y, (m, v) = backbone.batch_norm(
        p, stats, jnp.asarray(x), jnp.asarray(mask), use_running_average=False
    )
    valid = x[mask]  # (7, 4): the valid positions only
    mu, var = valid.mean(0), valid.var(0)
    np.testing.assert_allclose(y, (x - mu) / np.sqrt(var + 1e-5) * p["scale"] + p["bias"], 1e-10)
    np.testing.assert_allclose(m, 0.99 * stats[0] + 0.01 * mu, rtol=1e-12)
    np.testing.assert_allclose(v, 0.99 * stats[1] + 0.01 * var, rtol=1e-12)
    y_eval, same = backbone.batch_norm(p, stats, jnp.asarray(x), use_running_average=True)
    ref = (x - stats[0]) / np.sqrt(stats[1] + 1e-5) * p["scale"] + p["bias"]
    np.testing.assert_allclose(y_eval, ref, rtol=1e-10)
    assert same is stats


def test_batch_norm_frameworks_agree(rng):
    kw = dict(d_model=H, n_layers=2, layer_kwargs={"N": N}, norm="batch", pooling=None)
    model = hippox.nnx.SequenceModel(D_IN, D_OUT, **kw, rngs=nnx.Rngs(0))
    P = _perturb(model, rng)
    P = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), P)
    u = jnp.asarray(rng.normal(size=(3, L, D_IN)), jnp.float32)
    n = jnp.asarray([L, 5, 2])
    u_junk = u.at[1, 5:].set(50.0).at[2, 2:].set(-40.0)  # other padding: nothing may change
    y = model(u, seq_lengths=n)  # training: batch statistics over valid positions
    stats = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
    tol = dict(rtol=2e-5, atol=2e-6)

    def stats_tree(get):
        return {
            "norms": {i: get(f"norms_{i}") for i in range(2)},
            "final_norm": get("final_norm"),
        }

    # linen
    lin = hippox.linen.SequenceModel(D_OUT, **kw, deterministic=False)
    v0 = lin.init(jax.random.key(0), u)
    y_l, upd = lin.apply(
        {"params": _to_linen(P), "batch_stats": v0["batch_stats"]},
        u_junk,
        seq_lengths=n,
        mutable=["batch_stats"],
    )
    np.testing.assert_allclose(y_l, y, **tol)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, **tol),
        stats_tree(lambda k: upd["batch_stats"][k]),
        stats,
    )

    # Haiku: state mean/var of the norms_i / final_norm modules
    t = hk.without_apply_rng(
        hk.transform_with_state(
            lambda u, n, tr: hippox.haiku.SequenceModel(D_IN, D_OUT, **kw)(
                u, seq_lengths=n, is_training=tr
            )
        )
    )
    _, s0 = t.init(jax.random.key(0), u, n, True)
    y_h, s1 = t.apply(_to_haiku(P), s0, u_junk, n, True)
    np.testing.assert_allclose(y_h, y, **tol)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, **tol),
        stats_tree(lambda k: s1[f"sequence_model/~/{k}"]),
        stats,
    )

    # Equinox: state through eqx.nn.State, statistics across the vmapped batch
    e, s = eqx.nn.make_with_state(hippox.equinox.SequenceModel)(
        D_IN, D_OUT, **kw, axis_name="batch", key=jax.random.key(0)
    )
    e = eqx.tree_at(lambda m: m.params, e, P)
    run = jax.vmap(
        lambda m, u, n, s: m(u, s, seq_lengths=n),
        in_axes=(None, 0, 0, None),
        out_axes=(0, None),
        axis_name="batch",
    )
    y_e, s_e = run(e, u_junk, n, s)
    np.testing.assert_allclose(y_e, y, **tol)
    got = [dict(zip(("mean", "var"), s_e.get(idx), strict=True)) for idx in e.norm_state]
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, **tol),
        stats_tree(lambda k: got[-1 if k == "final_norm" else int(k[-1])]),
        stats,
    )

    # evaluation: the running averages, in NNX, Haiku, Equinox (call and step)
    model.eval()
    y_ev = model(u)
    y_h_ev, s2 = t.apply(_to_haiku(P), s1, u, None, False)
    np.testing.assert_allclose(y_h_ev, y_ev, **tol)
    jax.tree.map(np.testing.assert_array_equal, s2, s1)
    ei = eqx.nn.inference_mode(e)
    y_e_ev, _ = jax.vmap(lambda u: ei(u, s_e), out_axes=(0, None), axis_name="batch")(u)
    np.testing.assert_allclose(y_e_ev, y_ev, **tol)
    c = ei.initialize_carry()
    _, yk = ei.step(c, u[0, 0], state=s_e)
    np.testing.assert_allclose(yk, y_ev[0, 0], **tol)


# ----------------------------------------------------------------------------- bad input

BAD = [
    (dict(final_act="swishy"), ValueError, "final_act"),
    (dict(final_act=None, gate=2), ValueError, "final_act"),
    (dict(activation="glu", final_act="relu"), ValueError, "final_act"),
    (dict(gate=0), ValueError, "gate"),
    (dict(gate=1.5), TypeError, "gate"),
    (dict(gate_act="nope"), ValueError, "gate_act"),
    (dict(mult_act="glu"), ValueError, "mult_act"),
    (dict(bottleneck=8), ValueError, "bottleneck"),
    (dict(residual="X"), ValueError, "residual"),
    (dict(residual="H", residual_kwargs={"power": 1.0}), ValueError, "residual_kwargs"),
    (dict(residual="D", residual_kwargs={"l2": 1}), TypeError, "residual_kwargs"),
    (dict(residual=None, residual_kwargs={"alpha": 1.0}), ValueError, "residual_kwargs"),
    (dict(residual_kwargs=[1]), TypeError, "residual_kwargs"),
    (dict(drop_path=1.0), ValueError, "drop_path"),
    (dict(drop_path=-0.1), ValueError, "drop_path"),
    (dict(tie_dropout="yes"), TypeError, "tie_dropout"),
]


@pytest.mark.parametrize(("options", "error", "name"), BAD)
def test_bad_options(options, error, name):
    with pytest.raises(error, match=name):
        hippox.nnx.SequenceModel(D_IN, D_OUT, d_model=H, **options, rngs=nnx.Rngs(0))
    with pytest.raises(error, match=name):
        hippox.equinox.SequenceModel(D_IN, D_OUT, d_model=H, **options, key=jax.random.key(0))


def test_equinox_batch_norm_needs_state():
    e = hippox.equinox.SequenceModel(
        D_IN,
        D_OUT,
        d_model=H,
        n_layers=1,
        layer_kwargs={"N": N},
        norm="batch",
        key=jax.random.key(0),
    )
    with pytest.raises(ValueError, match="`state` must be"):
        e(jnp.ones((L, D_IN)))
    with pytest.raises(TypeError, match="`state` must be"):
        e(jnp.ones((L, D_IN)), {"mean": 0})
