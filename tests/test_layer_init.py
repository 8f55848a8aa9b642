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
    eps = np.finfo(dtype).eps  # a draw fused with its scale may round differently
    for name, w in want.items():
        assert got[name].dtype == w.dtype and got[name].shape == w.shape, name
        atol = 4 * eps * float(np.max(np.abs(w)))
        np.testing.assert_allclose(got[name], w, rtol=0, atol=atol, err_msg=name)
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
