"""Orbax checkpoints of a training run and of a step-mode carry (examples/checkpoint.py).

A `SequenceModel` (S4D, dropout on) and its optimizer are trained three steps, saved,
restored into objects built from another seed, and trained three more steps: every
loss and every parameter must equal those of the uninterrupted run exactly (the same
compiled step on the same values). A streaming carry saved after five steps and
restored gives exactly the outputs of the uninterrupted stream.
"""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

pytest.importorskip("orbax.checkpoint")
pytest.importorskip("flax")

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_ex_{name}", ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


ck = _load("checkpoint")


def test_training_resumes_exactly(tmp_path):
    res = ck.resume_training(tmp_path, before=3, after=3)
    assert len(res["losses"]) == 6 and np.all(np.isfinite(res["losses"]))
    # the restored objects started elsewhere, so equality is the restore's doing
    assert res["fresh_diff"] > 1e-3
    assert res["loss_diff"] == 0.0, res
    assert res["param_diff"] == 0.0, res
    assert res["step"] == 6  # the optimizer's step count was restored too (3 + 3)
    assert (tmp_path / "model").is_dir() and (tmp_path / "optimizer").is_dir()


def test_streaming_carry_resumes_exactly(tmp_path):
    res = ck.resume_stream(tmp_path, L=12, split=5)
    assert np.all(np.asarray(res["count"]) == 12)
    assert res["stream_diff"] == 0.0, res
    # step mode is the forward pass (float32): the carry holds a real state
    assert res["forward_diff"] < 1e-4, res
    assert (tmp_path / "carry").is_dir()


# the whole example (both runs at its default sizes, ~25 s of CPU); the properties it
# reports are checked by the two tests above in the default run
@pytest.mark.slow
def test_main_reports_success(tmp_path, capsys):
    assert ck.main(["--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "max |loss diff| 0.0e+00" in out and "after restoring the carry 0.0e+00" in out
