"""Sequential and permuted digits: HiPPO-RNN, S4, S4D, S5, GRU and LSTM trained end to end.

The data is scikit-learn's bundled ``load_digits`` (1797 greyscale 8 × 8 images, no
download). Each image is read pixel by pixel, row-major, as a length-64 sequence of
scalars (standardised with the training set's mean and standard deviation):

* ``seq``: the pixels in their natural order (a small sequential MNIST);
* ``perm``: the pixels in one fixed random order (seed 0), like the HiPPO paper's
  permuted MNIST: neighbouring pixels land far apart in the sequence, so a model must
  remember the whole sequence rather than a recent window.

The split is fixed (``train_test_split``, test_size=0.2, stratified, seed 0: 1437
training and 360 test images). Models (Flax NNX; sizes chosen for similar parameter
counts, printed in the table):

* ``hippo_rnn``: a HiPPO-LegS RNN classifier (`hippox.nnx.HiPPORNNCell` under
  `flax.nnx.RNN`, the last hidden state, a linear read-out);
* ``s4``, ``s4d``, ``s5``: `hippox.nnx.SequenceModel` (encoder, residual blocks of the
  layer, mean pooling, decoder);
* ``gru``, ``lstm``: Flax's own `flax.nnx.GRUCell` / `flax.nnx.OptimizedLSTMCell` under
  `flax.nnx.RNN`, classified like the HiPPO-RNN.

Training: cross-entropy, optax ``adamw`` under ``optax.multi_transform`` with
`hippox.optax_labels`: the SSM parameters (``Lambda``, ``P``, ``B``, ``log_dt``) get a
smaller learning rate and no weight decay (as in the S4/S5 papers), everything else
the default rate and weight decay; a warm-up + cosine schedule; batch 64 (the last
partial batch of each epoch is dropped so every step has one compiled shape). The
train step is one `jax.jit` function of ``(params, rest, opt_state, x, y)`` (NNX's
functional API: `flax.nnx.split` into parameters and the rest, `flax.nnx.merge`
inside the step, gradients by `flax.nnx.value_and_grad`); ``examples/sharded_step.py``
runs the same step sharded over a device mesh.

Usage (from the repository root)::

    .venv/bin/python examples/train_digits.py                      # every model, both tasks
    .venv/bin/python examples/train_digits.py --models s4d hippo_rnn --tasks seq --epochs 10
    .venv/bin/python examples/train_digits.py --quick              # 1 epoch on a subset
    .venv/bin/python examples/train_digits.py --out digits.md      # also write the table
    .venv/bin/python examples/train_digits.py --quiet              # the table only (no bar)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pathlib
import sys
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

import hippox
from hippox.nnx import HiPPORNNCell, SequenceModel

MODELS: tuple[str, ...] = ("hippo_rnn", "s4", "s4d", "s5", "gru", "lstm")
TASKS: tuple[str, ...] = ("seq", "perm")
SSM_MODELS: frozenset[str] = frozenset({"s4", "s4d", "s5"})
SEQ_LEN = 64
N_CLASSES = 10


# ----------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class Data:
    """One task's arrays: ``x`` (n, 64, 1) float32 standardised, ``y`` (n,) int32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_task(task: str, *, seed: int = 0, subset: int | None = None) -> Data:
    """The sequential (``seq``) or permuted (``perm``) digits task.

    Args:
      task: ``'seq'`` or ``'perm'``.
      seed: seed of the train/test split and of the permutation.
      subset: keep only the first ``subset`` training and ``subset // 4`` test images
        (None: all).

    Returns:
      `Data` with ``x_*`` of shape ``(n, 64, 1)`` float32 (standardised with the
      training mean and standard deviation) and ``y_*`` of shape ``(n,)`` int32.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")
    digits = load_digits()
    x = digits.images.reshape(len(digits.images), SEQ_LEN).astype(np.float64)
    y = digits.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    if task == "perm":
        perm = np.random.default_rng(seed).permutation(SEQ_LEN)
        x_tr, x_te = x_tr[:, perm], x_te[:, perm]
    mean, std = x_tr.mean(), x_tr.std()
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    if subset is not None:
        x_tr, y_tr = x_tr[:subset], y_tr[:subset]
        x_te, y_te = x_te[: max(1, subset // 4)], y_te[: max(1, subset // 4)]
    f32 = lambda a: a[..., None].astype(np.float32)  # noqa: E731
    return Data(f32(x_tr), y_tr, f32(x_te), y_te)


# --------------------------------------------------------------------------- models


class RNNClassifier(nnx.Module):
    """A recurrent cell over the sequence, its last output, and a linear read-out.

    ``x`` ``(batch, L, d_input)`` -> logits ``(batch, n_classes)``.
    """

    def __init__(self, cell: nnx.RNNCellBase, hidden: int, n_classes: int, *, rngs: nnx.Rngs):
        self.rnn = nnx.RNN(cell, rngs=False)  # zero initial carry (below): no carry RNG
        self.head = nnx.Linear(hidden, n_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        # Flax's cells draw their (zero) initial carry from an RNG stream; a fresh
        # stream per call keeps the model free of RNG state inside jit/grad.
        carry = self.rnn.cell.initialize_carry(x.shape[:1] + x.shape[2:], nnx.Rngs(carry=0))
        return self.head(self.rnn(x, initial_carry=carry)[:, -1])


@dataclasses.dataclass(frozen=True)
class Size:
    """Model sizes. The defaults give every model about 34k parameters.

    Attributes:
      d_model, n_layers: width H and depth of the SSM models.
      N, s4_N, s5_N: state sizes of S4D, S4 (its low-rank ``P`` costs as much as a
        quarter of the state) and S5 (one state shared by the channels, in 4 blocks).
      hippo_hidden, hippo_N: HiPPO-RNN hidden size and LegS memory order.
      gru_hidden, lstm_hidden: hidden sizes of the Flax baselines.
      dropout: dropout rate of the SSM models' blocks (training only).
    """

    d_model: int = 64
    n_layers: int = 2
    N: int = 64
    s4_N: int = 48
    s5_N: int = 96
    hippo_hidden: int = 128
    hippo_N: int = 256
    gru_hidden: int = 104
    lstm_hidden: int = 90
    dropout: float = 0.0

    @classmethod
    def tiny(cls) -> Size:
        """CI size (a few hundred to a few thousand parameters)."""
        return cls(
            d_model=16,
            n_layers=1,
            N=16,
            s4_N=16,
            s5_N=16,
            hippo_hidden=16,
            hippo_N=16,
            gru_hidden=16,
            lstm_hidden=16,
        )

    def describe(self, name: str) -> str:
        """A short description of model ``name`` at this size."""
        if name in SSM_MODELS:
            n = {"s4d": self.N, "s4": self.s4_N, "s5": self.s5_N}[name]
            layers = f"{self.n_layers} layer" + ("s" if self.n_layers != 1 else "")
            return f"H={self.d_model}, {layers}, N={n}"
        if name == "hippo_rnn":
            return f"hidden {self.hippo_hidden}, LegS N={self.hippo_N}"
        return f"hidden {self.gru_hidden if name == 'gru' else self.lstm_hidden}"


def build_model(name: str, size: Size, *, seed: int = 0) -> nnx.Module:
    """One of `MODELS` for inputs ``(batch, 64, 1)`` and 10 classes."""
    rngs = nnx.Rngs(seed)
    if name in SSM_MODELS:
        kw = {"N": {"s4d": size.N, "s4": size.s4_N, "s5": size.s5_N}[name]}
        if name == "s5":
            kw["blocks"] = 4 if size.s5_N % 8 == 0 else 1
        return SequenceModel(
            1,
            N_CLASSES,
            d_model=size.d_model,
            n_layers=size.n_layers,
            layer=name,
            layer_kwargs=kw,
            l_max=SEQ_LEN if name == "s4" else None,
            pooling="mean",
            dropout=size.dropout,
            rngs=rngs,
        )
    if name == "hippo_rnn":
        # The ungated cell of the recorded digits table (the cell's default is now the
        # reference's gated one; see hippox.HiPPORNNConfig).
        cell = HiPPORNNCell(
            1,
            size.hippo_hidden,
            N=size.hippo_N,
            measure="legs",
            gate="N",
            schedule="shifted",
            init="lecun",
            rngs=rngs,
        )
        return RNNClassifier(cell, size.hippo_hidden, N_CLASSES, rngs=rngs)
    if name == "gru":
        cell = nnx.GRUCell(1, size.gru_hidden, rngs=rngs)
        return RNNClassifier(cell, size.gru_hidden, N_CLASSES, rngs=rngs)
    if name == "lstm":
        cell = nnx.OptimizedLSTMCell(1, size.lstm_hidden, rngs=rngs)
        return RNNClassifier(cell, size.lstm_hidden, N_CLASSES, rngs=rngs)
    raise ValueError(f"`name` must be one of {MODELS}, got {name!r}.")


def count_params(model: nnx.Module) -> int:
    """Number of trainable scalars (`flax.nnx.Param` leaves)."""
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


# ------------------------------------------------------------------------- training


@dataclasses.dataclass(frozen=True)
class Hyper:
    """Optimiser settings: base and SSM learning rates, weight decay, schedule, batch."""

    lr: float = 1e-2
    ssm_lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_frac: float = 0.1
    batch: int = 64


def make_optimizer(hp: Hyper, total_steps: int) -> optax.GradientTransformation:
    """adamw with a warm-up + cosine schedule, the SSM group at ``ssm_lr`` without decay."""
    warmup = max(1, int(hp.warmup_frac * total_steps))

    def schedule(peak: float):
        return optax.warmup_cosine_decay_schedule(
            0.0, peak, warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1)
        )

    return optax.multi_transform(
        {
            "default": optax.adamw(schedule(hp.lr), weight_decay=hp.weight_decay),
            "ssm": optax.adam(schedule(hp.ssm_lr)),
        },
        hippox.optax_labels,
    )


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation):
    """A jitted ``(params, rest, opt_state, x, y) -> (params, rest, opt_state, loss)``."""

    def loss_fn(model, x, y):
        logits = model(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def train_step(params, rest, opt_state, x, y):
        model = nnx.merge(graphdef, params, rest)
        # nnx.value_and_grad: gradients with respect to the nnx.Param leaves, and the
        # dropout RNG state advanced in `model` (returned in `rest`)
        loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        rest = nnx.state(model, nnx.Not(nnx.Param))
        return optax.apply_updates(params, updates), rest, opt_state, loss

    return train_step


def make_eval(graphdef: nnx.GraphDef):
    """A jitted ``(params, rest, x) -> predicted classes``."""

    @jax.jit
    def predict(params, rest, x):
        model = nnx.merge(graphdef, params, rest)
        model.eval()  # dropout off
        return jnp.argmax(model(x), axis=-1)

    return predict


@dataclasses.dataclass
class Result:
    model: str
    task: str
    config: str
    params: int
    epochs: int
    first_loss: float
    last_loss: float
    train_acc: float
    test_acc: float
    seconds: float


def accuracy(predict, params, rest, x: np.ndarray, y: np.ndarray, batch: int = 512) -> float:
    correct = 0
    for i in range(0, len(x), batch):
        pred = predict(params, rest, jnp.asarray(x[i : i + batch]))
        correct += int(np.sum(np.asarray(pred) == y[i : i + batch]))
    return correct / len(x)


def train(
    name: str,
    task: str,
    data: Data,
    *,
    epochs: int,
    size: Size = Size(),
    hp: Hyper = Hyper(),
    seed: int = 0,
    log=print,
    progress: bool | None = False,
) -> Result:
    """Trains one model on one task and evaluates it on the test set.

    Returns:
      `Result` with the mean training loss of the first and last epochs, the final
      training and test accuracy, and the wall time (model construction, compilation
      and the per-epoch test evaluation included).

    ``log`` receives one line per epoch; ``progress`` shows a tqdm bar over the training
    steps (None: only on a terminal).
    """
    t0 = time.perf_counter()
    model = build_model(name, size, seed=seed)
    n_params = count_params(model)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    n = len(data.x_train)
    batch = min(hp.batch, n)
    steps_per_epoch = n // batch
    tx = make_optimizer(hp, epochs * steps_per_epoch)
    opt_state = tx.init(params)
    train_step = make_train_step(graphdef, tx)
    predict = make_eval(graphdef)
    rng = np.random.default_rng(seed)
    first_loss = last_loss = math.nan
    bar = tqdm(
        total=epochs * steps_per_epoch,
        desc=f"{name} {task}",
        unit="step",
        leave=False,
        disable=None if progress is None else not progress,
    )
    for epoch in range(epochs):
        order = rng.permutation(n)
        losses = []
        for s in range(steps_per_epoch):
            idx = order[s * batch : (s + 1) * batch]
            params, rest, opt_state, loss = train_step(
                params,
                rest,
                opt_state,
                jnp.asarray(data.x_train[idx]),
                jnp.asarray(data.y_train[idx]),
            )
            losses.append(loss)
            bar.update()
        last_loss = float(np.mean(jax.device_get(losses)))
        if epoch == 0:
            first_loss = last_loss
        test_acc = accuracy(predict, params, rest, data.x_test, data.y_test)
        bar.set_postfix(loss=f"{last_loss:.3f}", test_acc=f"{test_acc:.3f}")
        log(
            f"  {name:>9s} {task:>4s} epoch {epoch + 1:3d}/{epochs}  loss {last_loss:.4f}  "
            f"test acc {test_acc:.4f}  ({time.perf_counter() - t0:.1f} s)"
        )
    bar.close()
    train_acc = accuracy(predict, params, rest, data.x_train, data.y_train)
    test_acc = accuracy(predict, params, rest, data.x_test, data.y_test)
    return Result(
        name,
        task,
        size.describe(name),
        n_params,
        epochs,
        first_loss,
        last_loss,
        train_acc,
        test_acc,
        time.perf_counter() - t0,
    )


def table(results: Sequence[Result]) -> str:
    """The results as a Markdown table."""
    head = (
        "| model | task | size | parameters | epochs | final train loss | train acc | "
        "test acc | time |"
    )
    rows = [head, "|" + "---|" * 9]
    for r in results:
        rows.append(
            f"| {r.model} | {r.task} | {r.config} | {r.params:,} | {r.epochs} | "
            f"{r.last_loss:.4f} | {100 * r.train_acc:.1f}% | {100 * r.test_acc:.1f}% | "
            f"{r.seconds:.1f} s |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 30)")
    parser.add_argument(
        "--quick", action="store_true", help="1 epoch on a small subset, tiny models"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dropout", type=float, default=None, help="SSM models' dropout")
    parser.add_argument("--lr", type=float, default=Hyper.lr, help="peak learning rate")
    parser.add_argument("--ssm-lr", type=float, default=Hyper.ssm_lr, help="SSM group's rate")
    parser.add_argument("--out", help="also write the table (Markdown) to this file")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar and no per-epoch lines"
    )
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 30)
    if epochs < 1:
        parser.error(f"--epochs must be >= 1, got {epochs}.")
    size = Size.tiny() if args.quick else Size()
    hp = Hyper(lr=args.lr, ssm_lr=args.ssm_lr)
    if args.dropout is not None:
        size = dataclasses.replace(size, dropout=args.dropout)
    subset = 256 if args.quick else None
    if not args.quiet:
        print(f"jax {jax.__version__} on {jax.devices()[0].platform}; epochs={epochs}", flush=True)
    results = []
    for task in args.tasks:
        data = load_task(task, seed=args.seed, subset=subset)
        for name in args.models:
            log = (lambda s: None) if args.quiet else tqdm.write
            progress = False if args.quiet else None  # a bar on a terminal
            results.append(
                train(
                    name,
                    task,
                    data,
                    epochs=epochs,
                    size=size,
                    hp=hp,
                    seed=args.seed,
                    log=log,
                    progress=progress,
                )
            )
    text = table(results)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
