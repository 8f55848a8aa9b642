"""A SequenceModel training step sharded over a (data, model) mesh: examples/sharded_step.py.

The test process has already started JAX with one CPU device, so the sharded step
runs in a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``:
the batch split over ``'data'``, the SSM channel axis over ``'model'``, meshes
(4, 2) and (2, 4). Its loss, gradients and updated parameters must equal those of
the same step on one device (float32, 1e-5). In this process: the partition specs
put ``'model'`` on the H axis of exactly the per-channel SSM parameters.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

import hippox
from hippox.nnx import SequenceModel

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_ex_{name}", ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


ss = _load("sharded_step")

TOL = 1e-5


def _specs(layer, H=6, N=4):
    kw = {"N": N} if layer != "s5" else {"N": N, "blocks": 1}
    model = nnx.eval_shape(
        lambda: SequenceModel(
            1,
            3,
            d_model=H,
            n_layers=2,
            layer=layer,
            layer_kwargs=kw,
            l_max=8,
            rngs=nnx.Rngs(0),
        )
    )
    params = nnx.state(model, nnx.Param)
    flat = jax.tree_util.tree_flatten_with_path(ss.param_specs(model, params))[0]
    shapes = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    out = {}
    for path, spec in flat:
        names = tuple(ss._key_name(k) for k in path if ss._key_name(k) != "value")
        out[names] = (spec, shapes[path].shape)
    return out


@pytest.mark.parametrize("layer", ["s4d", "s4", "s5"])
def test_param_specs_shard_the_channel_axis(layer):
    H = 6  # differs from every other axis length (M = 2, rank 1, 2 for re/im, d_out 3)
    specs = _specs(layer, H=H)
    per_mode = {"Lambda_re", "Lambda_im", "log_dt"} if layer == "s5" else set()
    n_sharded = 0
    for names, (spec, shape) in specs.items():
        if names[0] == "layers" and names[2] not in per_mode:
            assert list(spec).count("model") == 1, (names, spec)
            axis = list(spec).index("model")
            assert shape[axis] == H, (names, shape, spec)
            n_sharded += 1
        else:
            assert spec == P(), (names, spec)
    n_leaves = {"s4d": 6, "s4": 7, "s5": 3}[layer]  # per layer: every leaf with an H axis
    assert n_sharded == 2 * n_leaves


def test_channel_axis_table_covers_every_ssm_leaf():
    """Every parameter with a channel axis is listed (so none is silently replicated)."""
    for config in (hippox.S4DConfig(H=6, N=4), hippox.S4Config(H=6, N=4, l_max=8)):
        shapes = config.param_shapes()
        table = ss.CHANNEL_AXIS[type(config)]
        for name, shape in shapes.items():
            assert shape[table[name]] == 6, (type(config).__name__, name, shape)
    s5 = hippox.S5Config(H=6, N=4)
    for name, shape in s5.param_shapes().items():
        axis = ss.CHANNEL_AXIS[hippox.S5Config].get(name)
        assert (axis is not None) == (6 in shape), (name, shape)
        if axis is not None:
            assert shape[axis] == 6


def test_make_mesh_needs_enough_devices():
    with pytest.raises(ValueError, match="`shape` must fit"):
        ss.make_mesh((len(jax.devices()) + 1, 1))


_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {examples!r})
    import jax
    assert len(jax.devices()) == 8, jax.devices()
    import sharded_step
    for layer, mesh in [("s4d", (4, 2)), ("s5", (2, 4))]:
        print(json.dumps(sharded_step.check(layer, mesh, batch=8, L=16, d_model=8, N=8)))
    """
)


def test_sharded_step_equals_single_device_step(tmp_path):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("JAX_ENABLE_X64", None)
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(examples=str(ROOT / "examples"))],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # not the repository: import the installed hippox, as users do
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["layer"] for r in results] == ["s4d", "s5"]
    for r in results:
        assert r["devices"] == 8
        assert np.isfinite(r["loss_single"]) and r["loss_single"] > 0
        assert r["loss_diff"] <= TOL, r
        assert r["grad_max_diff"] <= TOL * max(1.0, r["grad_max_abs"]), r
        assert r["grad_max_abs"] > 1e-3, r  # the gradients are not trivially zero
        assert r["param_max_diff"] <= TOL, r
        # the batch is split over 'data' and the gradient sums are collectives
        assert r["x_spec"] == str(P("data", None, None))
        assert r["all_reduces"] >= 1, r
        # the SSM parameters kept their channel sharding through the step
        specs = r["layer0_specs"]
        assert specs["C"] == str(P("model", None, None)) and specs["D"] == str(P("model"))
    s4d, s5 = results
    assert s4d["mesh"] == [4, 2] and s5["mesh"] == [2, 4]
    assert s4d["layer0_specs"]["Lambda_re"] == str(P("model", None))
    assert s5["layer0_specs"]["B"] == str(P(None, "model", None))
    assert s5["layer0_specs"]["Lambda_re"] == str(P())
