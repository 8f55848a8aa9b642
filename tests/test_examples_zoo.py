"""The model-zoo experiments (examples/hippo_table.py, examples/timescale.py) in --quick mode."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_resample_and_digits():
    zoo = _load("_zoo")
    x = np.arange(12.0).reshape(2, 6)
    up = zoo.resample(x, 2.0)
    np.testing.assert_allclose(up[0, ::2], x[0])  # the original samples, interpolated between
    np.testing.assert_allclose(up[0, 1:-1:2], x[0, :-1] + 0.5)
    np.testing.assert_allclose(zoo.resample(x, 0.5), x.reshape(2, 3, 2).mean(-1))
    x_tr, y_tr, x_te, _ = zoo.digits(4, subset=40)
    assert x_tr.shape == (40, 16) and x_te.shape == (20, 16) and y_tr.dtype == np.int32
    np.testing.assert_allclose(x_tr.mean(), 0.0, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("script", ["hippo_table", "timescale"])
def test_quick_run(script, tmp_path, capsys):
    out = tmp_path / script
    assert (
        _load(script).main(["--quick", "--quiet", "--models", "legs", "gru", "--out", str(out)])
        == 0
    )
    table = out.with_suffix(".md").read_text()
    assert "| legs |" in table and "| gru |" in table
    assert out.with_suffix(".png").stat().st_size > 1000
    assert str(out.with_suffix(".md")) in capsys.readouterr().out


def test_last_samples_probe_sees_only_the_last_samples():
    zoo = _load("_zoo")
    rng = np.random.default_rng()
    n, L = 400, 12
    x = rng.standard_normal((n, L))
    y_last = (x[:, -1] > 0).astype(int)  # decided by the last sample
    y_first = (x[:, 0] > 0).astype(int)  # decided by the first sample only
    last = zoo.last_samples_probe(x[:300], y_last[:300], x[300:], y_last[300:], (1, L))
    first = zoo.last_samples_probe(x[:300], y_first[:300], x[300:], y_first[300:], (1, L - 1, L))
    assert last[1] > 0.95 and last[L] > 0.9
    assert first[1] < 0.7 and first[L - 1] < 0.7 and first[L] > 0.9
