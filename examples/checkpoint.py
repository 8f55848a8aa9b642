"""Checkpoints with Orbax: save a training run and a streaming state, resume exactly.

Two things are saved and restored with `orbax.checkpoint` (Flax NNX's own choice):

1. **A training run**: a `hippox.nnx.SequenceModel` (S4D, with dropout, so the RNG
   state matters) and its `flax.nnx.Optimizer` (the S4/S5 optimizer of
   `ssm_optimizer`: per-tensor SSM rates, no SSM weight decay) are trained a few
   steps, saved, restored into a *freshly built* model and optimizer (built with another
   seed, so nothing survives by accident), and trained on. The losses and parameters
   equal those of the same run without the interruption.
2. **A streaming (step-mode) state**: the `hippox.nnx.SequenceCarry` after a prefix of
   a sequence is saved and restored, and stepping goes on from it; the outputs equal
   those of the uninterrupted stream.

What is saved is the NNX state (``nnx.state(model)``: parameters, RNG keys and counts,
BatchNorm statistics) and ``nnx.state(optimizer)`` (step count, Adam moments): plain
pytrees of arrays that Orbax's `StandardCheckpointer` writes; restoring needs a target
of the same structure, taken from the fresh objects.

Usage (from the repository root)::

    .venv/bin/python examples/checkpoint.py [--dir /some/empty/dir]

prints the largest differences (0.0 expected) and exits with status 1 if any is not 0.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

from hippox._src.optim import ssm_optimizer
from hippox.nnx import SequenceModel


def build(seed: int = 0, *, pooling: str | None = "mean") -> tuple[SequenceModel, nnx.Optimizer]:
    """A small S4D `SequenceModel` with dropout and its optimizer."""
    model = SequenceModel(
        2,
        3,
        d_model=8,
        n_layers=2,
        layer="s4d",
        layer_kwargs={"N": 8},
        dropout=0.1,
        pooling=pooling,
        rngs=nnx.Rngs(params=seed, dropout=seed + 1),
    )
    tx = ssm_optimizer(1e-2, ssm_learning_rate=1e-3, weight_decay=0.01)
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


def batches(n: int, *, seed: int = 0, batch: int = 8, L: int = 16):
    """``n`` batches ``(x (batch, L, 2) float32, y (batch,) int32)`` of synthetic data."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.standard_normal((batch, L, 2)).astype(np.float32)
        y = (x[:, :, 0].sum(1) > 0).astype(np.int32) + (x[:, :, 1].sum(1) > 2).astype(np.int32)
        out.append((jnp.asarray(x), jnp.asarray(y)))
    return out


@nnx.jit
def train_step(model: SequenceModel, optimizer: nnx.Optimizer, x, y) -> jax.Array:
    """One optimizer step on a batch (dropout active); returns the loss."""

    def loss_fn(m):
        return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def save(directory: pathlib.Path, model: SequenceModel, optimizer: nnx.Optimizer) -> None:
    """Writes ``nnx.state`` of the model and the optimizer under ``directory``."""
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(directory / "model", nnx.state(model))
        ckptr.save(directory / "optimizer", nnx.state(optimizer))


def restore(directory: pathlib.Path, model: SequenceModel, optimizer: nnx.Optimizer) -> None:
    """Loads the states written by `save` into (freshly built) ``model`` and ``optimizer``."""
    with ocp.StandardCheckpointer() as ckptr:
        nnx.update(model, ckptr.restore(directory / "model", nnx.state(model)))
        nnx.update(optimizer, ckptr.restore(directory / "optimizer", nnx.state(optimizer)))


def save_carry(directory: pathlib.Path, carry) -> None:
    """Writes a step-mode carry (a `SequenceCarry` pytree)."""
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(directory / "carry", carry)


def restore_carry(directory: pathlib.Path, like):
    """Reads a carry written by `save_carry`; ``like`` gives its structure and dtypes."""
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(directory / "carry", target)


def _params(model) -> dict:
    return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def _max_diff(a, b) -> float:
    diffs = jax.tree.leaves(jax.tree.map(lambda u, v: float(np.max(np.abs(u - v))), a, b))
    return max(diffs)


def resume_training(directory: pathlib.Path, *, before: int = 3, after: int = 3) -> dict:
    """Trains ``before`` steps, saves, restores into fresh objects, trains ``after`` more.

    Returns:
      ``{"losses": uninterrupted losses, "resumed": losses of the resumed run,
      "loss_diff", "param_diff": largest absolute differences, "fresh_diff": how far the
      fresh model's parameters were from the trained ones, "step": the optimizer's step}``.
    """
    data = batches(before + after)
    model, opt = build(0)
    losses = [float(train_step(model, opt, x, y)) for x, y in data]

    model1, opt1 = build(0)
    resumed = [float(train_step(model1, opt1, x, y)) for x, y in data[:before]]
    save(directory, model1, opt1)
    del model1, opt1
    model2, opt2 = build(123)  # other initial values: the restore must replace them all
    fresh_diff = _max_diff(_params(model), _params(model2))
    restore(directory, model2, opt2)
    resumed += [float(train_step(model2, opt2, x, y)) for x, y in data[before:]]
    return {
        "losses": losses,
        "resumed": resumed,
        "loss_diff": float(np.max(np.abs(np.subtract(losses, resumed)))),
        "param_diff": _max_diff(_params(model), _params(model2)),
        "fresh_diff": fresh_diff,
        "step": int(opt2.step[...]),
    }


def resume_stream(directory: pathlib.Path, *, L: int = 12, split: int = 5) -> dict:
    """Streams a sequence in step mode, saving and restoring the carry after ``split`` steps.

    Returns:
      ``{"stream_diff": largest difference between resumed and uninterrupted outputs,
      "forward_diff": step mode vs the forward pass on the whole sequence}``.
    """
    model, _ = build(0, pooling=None)
    model.eval()
    u = jnp.asarray(np.random.default_rng(1).standard_normal((2, L, 2)), jnp.float32)
    sp = model.setup_step()
    step = nnx.jit(lambda m, c, x: m.step(c, x, sp))

    carry = model.initialize_carry((2,))
    full = []
    for k in range(L):
        carry, y = step(model, carry, u[:, k])
        full.append(np.asarray(y))

    carry = model.initialize_carry((2,))
    resumed = []
    for k in range(split):
        carry, y = step(model, carry, u[:, k])
        resumed.append(np.asarray(y))
    save_carry(directory, carry)
    fresh = model.initialize_carry((2,))  # zeros: structure and dtypes only
    carry = restore_carry(directory, fresh)
    for k in range(split, L):
        carry, y = step(model, carry, u[:, k])
        resumed.append(np.asarray(y))
    forward = np.asarray(model(u))
    return {
        "stream_diff": float(np.max(np.abs(np.stack(full) - np.stack(resumed)))),
        "forward_diff": float(np.max(np.abs(np.stack(full, 1) - forward))),
        "count": np.asarray(carry.count).tolist(),  # positions processed (per sequence)
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=pathlib.Path, default=None, help="checkpoint directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = (args.dir or pathlib.Path(tmp)).absolute()
        train = resume_training(root / "train")
        stream = resume_stream(root / "stream")
    print(f"training: losses {[round(v, 4) for v in train['losses']]}")
    print(
        f"  resumed run: max |loss diff| {train['loss_diff']:.1e}, "
        f"max |param diff| {train['param_diff']:.1e}, optimizer step {train['step']}"
    )
    print(
        f"streaming: max |output diff| after restoring the carry {stream['stream_diff']:.1e} "
        f"(step vs forward: {stream['forward_diff']:.1e})"
    )
    ok = train["loss_diff"] == 0 and train["param_diff"] == 0 and stream["stream_diff"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
