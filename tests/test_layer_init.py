"""`LayerConfig.init_params` / `init_from_keys`: one compiled draw equals the per-leaf calls."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hippox._src.layers.lssl import LSSLConfig
from hippox._src.layers.s4 import S4Config
from hippox._src.layers.s4d import S4DConfig
from hippox._src.layers.s5 import S5Config

CONFIGS = [
    S4DConfig(H=3, N=8, ssm_init="lin", bidirectional=True),
    S4Config(H=3, l_max=16, N=8),
    S5Config(H=3, N=8),
    LSSLConfig(H=3, N=4),
]


def _eager(cfg, keys, dtype):
    specs = cfg.param_specs().items()
    return {n: init(k, s, dtype) for k, (n, (s, init)) in zip(keys, specs, strict=True)}


def _close(got, want, dtype=np.float32):
    """Equal leaves up to a few ulps: one program may round a scaled draw differently."""
    assert sorted(got) == sorted(want)
    eps = np.finfo(dtype).eps
    for name, w in want.items():
        atol = 4 * eps * float(np.max(np.abs(w)))
        np.testing.assert_allclose(got[name], w, rtol=0, atol=atol, err_msg=name)


@pytest.mark.parametrize(
    "cfg,dtype",
    [(c, jnp.float32) for c in CONFIGS] + [(CONFIGS[1], jnp.float64)],
    ids=lambda x: getattr(x, "__name__", type(x).__name__),
)
def test_init_params_equals_one_call_per_leaf(cfg, dtype):
    key = jax.random.key(7)
    keys = jax.random.split(key, len(cfg.param_shapes()))
    want = _eager(cfg, keys, dtype)
    got = cfg.init_params(key, param_dtype=dtype)
    assert list(got) == list(cfg.param_shapes())
    for name, w in want.items():
        assert got[name].dtype == w.dtype and got[name].shape == w.shape, name
    _close(got, want, dtype)
    again = cfg.init_from_keys(keys, param_dtype=dtype)
    for name in want:
        np.testing.assert_array_equal(again[name], got[name])
    other = cfg.init_params(jax.random.key(8), param_dtype=dtype)
    assert not np.allclose(other["D"], got["D"])  # the draws depend on the key


def test_init_from_keys_needs_one_key_per_leaf():
    cfg = CONFIGS[0]
    keys = jax.random.split(jax.random.key(0), len(cfg.param_shapes()) - 1)
    with pytest.raises(ValueError, match="`keys` must be an array of"):
        cfg.init_from_keys(keys)


@pytest.mark.parametrize("cfg", CONFIGS[:2], ids=lambda c: type(c).__name__)
def test_linen_layers_draw_the_per_leaf_values_in_one_call(cfg):
    """Linen's layers get, in one compiled draw, the values of one ``self.param`` per leaf."""
    from flax import linen as nn

    import hippox.linen as hl

    class PerLeaf(nn.Module):  # the per-leaf construction, keys from self.param in order
        @nn.compact
        def __call__(self):
            return {n: self.param(n, i, s, jnp.float32) for n, (s, i) in cfg.param_specs().items()}

    key = jax.random.key(int(np.random.default_rng().integers(1 << 30)))
    want = PerLeaf().init(key)["params"]
    cls = {"S4DConfig": hl.S4D, "S4Config": hl.S4}[type(cfg).__name__]
    layer = cls(**{mod: getattr(cfg, name) for name, mod in cls._field_names.items()})
    assert layer.config == cfg
    u = jnp.ones((1, 16, cfg.H), jnp.float32)
    got = layer.init(key, u)["params"]
    _close(got, want)
    np.testing.assert_array_equal(layer.apply({"params": got}, u), layer.apply({"params": got}, u))


def test_haiku_layers_draw_the_per_leaf_values_in_one_call():
    """Haiku: the same values as one ``hk.get_parameter`` per leaf; a second call of the
    module under init takes no keys (later modules' draws are unchanged)."""
    import haiku as hk

    import hippox.haiku as hh
    from hippox._haiku_params import get_params

    cfg = CONFIGS[0]

    def per_leaf():
        with hk.experimental.name_scope("layer"):
            a = get_params(cfg.param_specs(), jnp.float32)
        return a, hk.get_parameter("after", (3,), jnp.float32, hk.initializers.RandomNormal())

    def one_call(u):
        layer = hh.S4D(cfg.H, N=cfg.N, ssm_init="lin", bidirectional=True, name="layer")
        layer(u)
        layer(u)  # shared: no second draw
        return hk.get_parameter("after", (3,), jnp.float32, hk.initializers.RandomNormal())

    key = jax.random.key(int(np.random.default_rng().integers(1 << 30)))
    want = hk.transform(per_leaf).init(key)
    got = hk.transform(one_call).init(key, jnp.ones((1, 16, cfg.H), jnp.float32))
    _close(got["layer"], want["layer"])
    np.testing.assert_array_equal(got["~"]["after"], want["~"]["after"])


def test_init_from_counter_equals_the_streams_keys():
    """``fold_in(key, start + i)`` derived inside the draw: the keys of a counter stream."""
    cfg = CONFIGS[1]
    n = len(cfg.param_shapes())
    key = jax.random.key(int(np.random.default_rng().integers(1 << 30)))
    start = jnp.asarray(5, jnp.uint32)
    keys = jnp.stack([jax.random.fold_in(key, 5 + i) for i in range(n)])
    want = cfg.init_from_keys(keys)
    got = cfg.init_from_counter(key, start)
    _close(got, want)


def test_nnx_layer_uses_and_advances_the_params_stream():
    """NNX layers: the leaves of ``rngs.params()`` called once per leaf, and the stream
    left where those calls leave it (the next module's draws are unchanged)."""
    from flax import nnx

    import hippox.nnx as hn

    cfg = CONFIGS[0]
    seed = int(np.random.default_rng().integers(1 << 30))
    per_leaf = nnx.Rngs(seed)
    keys = jnp.stack([per_leaf.params() for _ in cfg.param_shapes()])
    want = cfg.init_from_keys(keys)
    rngs = nnx.Rngs(seed)
    layer = hn.S4D(cfg.H, cfg.N, ssm_init="lin", bidirectional=True, rngs=rngs)
    _close({name: getattr(layer, name)[...] for name in want}, want)
    np.testing.assert_array_equal(
        jax.random.key_data(rngs.params()), jax.random.key_data(per_leaf.params())
    )
    # Under a Flax transform (traced stream) the per-leaf path gives the same values.
    traced = nnx.jit(lambda r: hn.S4D(cfg.H, cfg.N, ssm_init="lin", bidirectional=True, rngs=r))
    other = traced(nnx.Rngs(seed))
    _close({name: getattr(other, name)[...] for name in want}, want)
