"""CKConv extras (hippox/_src/layers/ckconv.py): the kernel net's BatchNorm option, kernel
dropout, and the reference's residual block `CKBlockConfig`, against float64 NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hippox._src.layers.ckconv import CKBlockConfig, CKConvConfig


def _params(cfg, rng, scale=0.5):
    return {
        k: jnp.asarray(rng.normal(size=s) * scale, jnp.float64)
        for k, s in cfg.param_shapes().items()
    }


def _kernel_numpy(cfg, p, L):
    """Float64 kernel net on the grid 1 - 2m/(l_max-1), (L, out, in); relu or sine nets."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    pos = 1.0 - np.arange(max(L, cfg.l_max)) * 2.0 / (cfg.l_max - 1)
    h = pos[:, None]
    for k in (1, 2, 3):
        v = p[f"v{k}"]
        h = h @ (p[f"g{k}"] * v / np.sqrt((v**2).sum(0)))
        if cfg.bias:
            h = h + p[f"b{k}"]
        if k == 3:
            break
        if cfg.activation == "sine":
            h = np.sin(cfg.omega_0 * h)
            continue
        if cfg.norm == "batch":  # BatchNorm1d (training mode) over the positions
            h = (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-5)
        elif cfg.norm == "layer":
            h = (h - h.mean()) / np.sqrt(h.var() + 1e-12)
        if cfg.norm is not None:
            h = h * p[f"norm{k}_scale"] + p[f"norm{k}_shift"]
        h = np.maximum(h, 0.0)
    return h.reshape(-1, cfg.H, cfg.H)[:L]


def _conv_numpy(K, x, bias):
    L = x.shape[0]
    y = np.zeros((L, K.shape[1]))
    for t in range(L):
        for m in range(t + 1):
            y[t] += K[m] @ x[t - m]
    return y + bias


def test_batchnorm_kernel_net(rng):
    cfg = CKConvConfig(2, hidden=5, activation="relu", norm="batch", l_max=9)
    assert "norm1_scale" in cfg.param_shapes() and "norm2_shift" in cfg.param_shapes()
    p = _params(cfg, rng)
    x = rng.normal(size=(9, 2))
    K = _kernel_numpy(cfg, p, 9)
    np.testing.assert_allclose(cfg.kernel(p, 9), K, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cfg.apply(p, x), _conv_numpy(K, x, p["bias"]), rtol=1e-9)
    # per-unit statistics differ from the layer norm's (the option is not a no-op)
    lay = CKConvConfig(2, hidden=5, activation="relu", norm="layer", l_max=9)
    assert not np.allclose(lay.kernel(p, 9), K)


def test_kernel_dropout(rng):
    rate = 0.3
    cfg = CKConvConfig(3, hidden=6, l_max=40, omega_0=5.0, weight_dropout=rate)
    p = _params(cfg, rng)
    key = jax.random.key(3)
    K = np.asarray(cfg.kernel(p, 40))
    Kd = np.asarray(cfg.kernel(p, 40, dropout_key=key))
    dropped = Kd == 0.0
    np.testing.assert_allclose(Kd[~dropped], K[~dropped] / (1 - rate), rtol=1e-12)
    assert abs(dropped.mean() - rate) < 0.06, dropped.mean()  # 360 entries
    # the layer convolves with the dropped kernel; without a key it is deterministic
    x = rng.normal(size=(40, 3))
    y = cfg.apply(p, x, dropout_key=key)
    np.testing.assert_allclose(y, _conv_numpy(Kd, x, p["bias"]), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(cfg.apply(p, x), _conv_numpy(K, x, p["bias"]), rtol=1e-9)
    g = jax.grad(lambda p: jnp.sum(cfg.apply(p, x[:8], dropout_key=key) ** 2))(p)
    assert all(np.isfinite(v).all() for v in jax.tree.leaves(g))


def test_gaussian_smoothing(rng):
    """The reference's smoothing of the kernel for a finer sampling (r < 1)."""
    sigma, r, L = 0.8, 0.5, 12  # h = int(1 / r) = 2: 5 taps
    cfg = CKConvConfig(2, hidden=6, l_max=8, omega_0=5.0, smoothing_sigma=sigma)
    plain = CKConvConfig(2, hidden=6, l_max=8, omega_0=5.0)
    p = _params(cfg, rng)
    K = np.asarray(plain.kernel(p, L, step_rescale=r), np.float64)  # r K(p_m), unsmoothed
    j = np.arange(-2, 3)
    G = np.exp(-(j**2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))
    Ks = K.copy()
    for o in range(2):
        for i in range(2):
            Ks[2 : L - 2, o, i] = np.convolve(K[:, o, i], G, mode="valid")
    np.testing.assert_allclose(cfg.kernel(p, L, step_rescale=r), Ks, rtol=1e-10, atol=1e-12)
    x = rng.normal(size=(L, 2))
    y = cfg.apply(p, x, step_rescale=r)
    np.testing.assert_allclose(y, _conv_numpy(Ks, x, p["bias"]), rtol=1e-9, atol=1e-10)
    # no smoothing at r >= 1; a traced r is refused (the taps depend on it)
    np.testing.assert_allclose(cfg.apply(p, x), plain.apply(p, x), rtol=1e-12)
    with pytest.raises(ValueError, match="`step_rescale` must be a concrete scalar"):
        jax.jit(lambda r: cfg.apply(p, x, step_rescale=r))(0.5)
    with pytest.raises(ValueError, match="`smoothing_sigma` must be > 0"):
        CKConvConfig(2, smoothing_sigma=0.0)


def _group_norm_numpy(y, scale, shift, n):
    v = y[:n]
    z = (y - v.mean()) / np.sqrt(v.var() + 1e-12)
    return z * scale + shift


def _block_numpy(cfg, p, x, n):
    """Float64 reference of the residual block (no dropout) on one sequence, valid n."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    L = x.shape[0]
    conv = cfg.conv
    y = np.where(np.arange(L)[:, None] < n, x, 0.0)
    for k in (1, 2):
        pk = {name[6:]: v for name, v in p.items() if name.startswith(f"conv{k}_")}
        y = _conv_numpy(
            _kernel_numpy(conv, pk, L), np.where(np.arange(L)[:, None] < n, y, 0.0), pk["bias"]
        )
        y = np.maximum(_group_norm_numpy(y, p[f"norm{k}_scale"], p[f"norm{k}_shift"], n), 0.0)
    y = np.maximum(y + x, 0.0)
    return np.where(np.arange(L)[:, None] < n, y, 0.0)


def test_block_matches_numpy(rng):
    cfg = CKBlockConfig(3, hidden=6, l_max=10, omega_0=8.0, dropout=0.5)
    p = _params(cfg, rng)
    for k in (1, 2):
        p[f"norm{k}_scale"] = 1.0 + p[f"norm{k}_scale"]
    x = rng.normal(size=(2, 10, 3))
    n = np.array([10, 6])
    y = jax.jit(lambda p, x, n: cfg.apply(p, x, seq_lengths=n))(p, x, n)
    for b in range(2):
        np.testing.assert_allclose(y[b], _block_numpy(cfg, p, x[b], n[b]), rtol=1e-8, atol=1e-9)
    # padding never reaches valid outputs
    np.testing.assert_allclose(y[1, :6], cfg.apply(p, x[1, :6]), rtol=1e-9, atol=1e-10)
    # dropout only with a key; the rate is the block's
    key = jax.random.key(0)
    yd = np.asarray(cfg.apply(p, x, dropout_key=key))
    assert not np.allclose(yd, cfg.apply(p, x))
    none = CKBlockConfig(3, hidden=6, l_max=10, omega_0=8.0, dropout=0.0)
    np.testing.assert_allclose(none.apply(p, x, dropout_key=key), none.apply(p, x), rtol=1e-12)
    g = jax.grad(lambda p: jnp.sum(cfg.apply(p, x, dropout_key=key) ** 2))(p)
    assert all(np.isfinite(v).all() for v in jax.tree.leaves(g))


def test_block_params_and_errors():
    cfg = CKBlockConfig(4, hidden=8, l_max=16)
    p = cfg.init_params(jax.random.key(0))
    conv = CKConvConfig(4, hidden=8, l_max=16).param_shapes()
    assert {k[6:] for k in p if k.startswith("conv1_")} == set(conv)
    np.testing.assert_array_equal(p["norm1_scale"], 1.0)
    assert cfg.conv == CKConvConfig(4, hidden=8, l_max=16)
    with pytest.raises(ValueError, match=r"`dropout` must be in \[0, 1\)"):
        CKBlockConfig(4, dropout=1.0)
    with pytest.raises(ValueError, match=r"`weight_dropout` must be in \[0, 1\)"):
        CKConvConfig(4, weight_dropout=1.5)
    with pytest.raises(ValueError, match="`norm` must be one of"):
        CKBlockConfig(4, norm="group")
    with pytest.raises(ValueError, match=r"`u` must have shape \(\.\.\., L, H\)"):
        cfg.apply(p, jnp.ones((2, 5, 3)))


# ---------------------------------------------------------------- the wrappers


def test_block_frameworks_agree(rng):
    import equinox as eqx
    import flax.linen as nn  # noqa: F401
    import haiku as hk
    from flax import nnx

    from hippox import _equinox_cells, _haiku_cells
    from hippox.linen import cells as linen_cells
    from hippox.nnx import cells as nnx_cells

    H, L = 3, 8
    opts = dict(hidden=6, l_max=8, omega_0=10.0, dropout=0.4, weight_dropout=0.2)
    u = jnp.asarray(rng.normal(size=(2, L, H)), jnp.float32)
    n = jnp.array([8, 5])
    key = jax.random.key(7)
    block = nnx_cells.CKBlock(H, **opts, rngs=nnx.Rngs(0))
    params = block.conv_params()
    cfg = CKBlockConfig(H, **opts)
    ref = cfg.apply(params, u, seq_lengths=n)
    ref_key = cfg.apply(params, u, seq_lengths=n, dropout_key=key)
    # NNX: training mode by default (dropout from its rngs), eval() turns it off
    y_train = block(u, seq_lengths=n)
    assert not np.allclose(y_train, ref)
    np.testing.assert_allclose(block(u, seq_lengths=n, dropout_key=key), ref_key, rtol=1e-6)
    block.eval()
    np.testing.assert_allclose(block(u, seq_lengths=n), ref, rtol=1e-6)
    # linen: deterministic by default; an explicit key or the 'dropout' rng otherwise
    lb = linen_cells.CKBlock(H=H, **opts)
    v = lb.init(jax.random.key(0), u)
    assert jax.tree.map(jnp.shape, v["params"]) == jax.tree.map(jnp.shape, params)
    np.testing.assert_allclose(lb.apply({"params": params}, u, seq_lengths=n), ref, rtol=1e-6)
    y_l = lb.apply({"params": params}, u, seq_lengths=n, deterministic=False, dropout_key=key)
    np.testing.assert_allclose(y_l, ref_key, rtol=1e-6)
    # haiku: dropout with is_training=True
    f = hk.transform(lambda u, t: _haiku_cells.CKBlock(H, **opts)(u, seq_lengths=n, is_training=t))
    hp = f.init(jax.random.key(0), u, False)
    assert set(hp["ck_block"]) == set(params)
    np.testing.assert_allclose(f.apply({"ck_block": params}, None, u, False), ref, rtol=1e-6)
    y_h = f.apply({"ck_block": params}, jax.random.key(1), u, True)
    assert not np.allclose(y_h, ref)
    # equinox: dropout when a key is given
    e = _equinox_cells.CKBlock(H, **opts, key=jax.random.key(0))
    e = eqx.tree_at(lambda m: m.params, e, params)
    np.testing.assert_allclose(e(u, seq_lengths=n), ref, rtol=1e-6)
    np.testing.assert_allclose(e(u, seq_lengths=n, key=key), ref_key, rtol=1e-6)
    np.testing.assert_allclose(e(u, seq_lengths=n, key=key, inference=True), ref, rtol=1e-6)
