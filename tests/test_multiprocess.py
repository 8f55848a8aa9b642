"""The sharded training step across 2 local processes with `jax.distributed`.

examples/multiprocess_step.py starts two worker processes (a coordinator on
localhost, 2 CPU devices each, mesh ``('data', 'model') = (2, 2)``: the batch split
across the processes, the SSM channels across each process's devices) and one
single-process, single-device reference; every process is bounded in time and killed
when one fails. The distributed step's loss and updated parameters must equal the
reference's (float32, 1e-5).
"""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("optax")

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOL = 1e-5


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_ex_{name}", ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


mp = _load("multiprocess_step")


def test_two_processes_equal_the_single_process_step(tmp_path):
    res = mp.launch(tmp_path, layer="s4d", num_processes=2, local_devices=2, timeout=300)
    for w in res["workers"]:
        assert w["process_count"] == 2 and w["devices"] == 4 and w["local_devices"] == 2
        # the first layer's SSM parameters stayed split over 'model'
        assert w["layer0_specs"]["Lambda_re"] == "P('model', None)"
        assert w["layer0_specs"]["C"] == "P('model', None, None)"
    assert np.isfinite(res["loss_single"]) and res["loss_single"] > 0
    assert len(res["loss_multi"]) == 2
    assert res["loss_diff"] <= TOL, res
    assert res["param_max_diff"] <= TOL, res
    # the step moved the parameters (so equal parameters are not trivially equal)
    from flax import nnx

    model, _ = mp._build("s4d")
    initial = mp._flat(nnx.split(model, nnx.Param, ...)[1])
    single = np.load(tmp_path / "single.npz")
    assert sorted(initial) == sorted(k for k in single.files if k != "loss")
    assert res["n_params"] == len(initial)
    moved = max(float(np.max(np.abs(single[k] - initial[k]))) for k in initial)
    assert moved > 1e-4


def test_a_failing_process_is_reported_and_reaped(tmp_path):
    with pytest.raises(RuntimeError, match="processes failed or timed out"):
        mp.launch(tmp_path, layer="bogus", timeout=60)  # argparse rejects the layer


def test_timeout_kills_the_processes(tmp_path):
    with pytest.raises(RuntimeError, match="processes failed or timed out"):
        mp.launch(tmp_path, timeout=0.5)
