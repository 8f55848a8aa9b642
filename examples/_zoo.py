"""Shared pieces of the model-zoo experiments (``hippo_table.py``, ``timescale.py``).

* data: scikit-learn's bundled digits (no download), upsampled to ``side × side`` and read
  pixel by pixel (``L = side²``), natural or one fixed permuted order, standardised;
  resampled in time for the timescale experiment;
* models (Flax NNX) at a matched parameter budget: the HiPPO-RNN presets of
  `hippox.hippo_cell_options` (``legs``, ``lagt``, ``legt``, ``lmu``, ``rand``; memory order
  = hidden size, the authors' ``memory_order=-1``) and ``rand_stable`` (HiPPO-Rand with
  ``A`` shifted to be stable, ``max_real = -0.1``), the baseline cells (``gru``, ``lstm``,
  ``mgu``, ``rnn``, ``minimalrnn``, ``exprnn``), each classified from its last hidden state
  by a linear read-out, and small S4 / S4D / S5 stacks (``s4``, ``s4d``, ``s5``) whose
  layers take ``step_rescale``;
* training: Adam with a warm-up + cosine schedule (the SSM parameters at a lower rate,
  `hippox.optax_labels`), one jitted step, a tqdm bar.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

import hippox
from hippox._src.layers.rnn import hippo_cell_options
from hippox.nnx import S4, S4D, S5, HiPPORNNCell
from hippox.nnx import cells as nnx_cells

HIPPO = {
    "legs": "legs",
    "lagt": "lagt",
    "legt": "legt",
    "lmu": "lmu",
    "rand": "random",
    "rand_stable": "random",
}
#: ``rand_stable``'s rightmost eigenvalue of ``A`` (the authors' HiPPO-Rand is unstable).
RAND_STABLE_MAX_REAL = -0.1
BASELINES = {
    "gru": nnx_cells.GRUCell,
    "lstm": nnx_cells.LSTMCell,
    "mgu": nnx_cells.MGUCell,
    "rnn": nnx_cells.RNNCell,
    "minimalrnn": nnx_cells.MinimalRNNCell,
    "exprnn": nnx_cells.ExpRNNCell,
}
SSMS = {"s4": S4, "s4d": S4D, "s5": S5}
MODELS = (*HIPPO, *BASELINES, *SSMS)
N_CLASSES = 10


# ----------------------------------------------------------------------------- data


def digits(side: int, *, seed: int = 0, subset: int | None = None):
    """Digits upsampled to ``side × side`` (bilinear), flattened: ``(n, side²)`` float64,
    labels int32; the fixed stratified split of ``examples/train_digits.py``."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    imgs = d.images.astype(np.float64)
    if side != 8:
        imgs = np.stack([zoom(im, side / 8, order=1) for im in imgs])
    x = imgs.reshape(len(imgs), side * side)
    y = d.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    if subset is not None:
        x_tr, y_tr, x_te, y_te = (
            x_tr[:subset],
            y_tr[:subset],
            x_te[: subset // 2],
            y_te[: subset // 2],
        )
    mean, std = x_tr.mean(), x_tr.std()
    return (x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te


def permute(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """The pixels in one fixed random order (seed ``seed``)."""
    return x[:, np.random.default_rng(seed).permutation(x.shape[1])]


def resample(x: np.ndarray, rate: float) -> np.ndarray:
    """The sequences at ``rate`` × the sampling rate: linear interpolation for ``rate > 1``,
    the mean of ``1 / rate`` neighbours for ``rate < 1`` (an integer factor)."""
    L = x.shape[1]
    if rate == 1:
        return x
    if rate > 1:
        t_new = np.arange(round(L * rate)) / rate
        return np.stack([np.interp(t_new, np.arange(L), row) for row in x])
    k = round(1 / rate)
    return x[:, : L - L % k].reshape(len(x), L // k, k).mean(-1)


# --------------------------------------------------------------------------- models


class RNNClassifier(nnx.Module):
    """A cell over the sequence, its last output, a linear read-out: (B, L, 1) -> (B, 10)."""

    def __init__(self, cell, hidden: int, *, rngs: nnx.Rngs):
        self.cell = cell
        self.head = nnx.Linear(hidden, N_CLASSES, rngs=rngs)

    def __call__(self, x, step_rescale=1.0):
        del step_rescale  # a recurrent cell has no notion of the sampling rate
        carry = self.cell.initialize_carry(x.shape[:1] + x.shape[2:])
        _, h = self.cell.config.apply(_cell_params(self.cell), x, carry)
        return self.head(h[:, -1])


def _cell_params(cell):
    return {name: getattr(cell, name)[...] for name in cell.config.param_shapes()}


class SSMClassifier(nnx.Module):
    """Encoder, residual blocks (SSM layer, GELU, Dense, LayerNorm), mean pool, decoder."""

    def __init__(self, layer_cls, H: int, n_layers: int, N: int, L: int, *, rngs: nnx.Rngs):
        self.encoder = nnx.Linear(1, H, rngs=rngs)
        kw = {"l_max": L} if layer_cls is S4 else {}
        if layer_cls is S5:
            kw["blocks"] = 4 if N % 8 == 0 else 1
        self.layers = nnx.List([layer_cls(H, N=N, **kw, rngs=rngs) for _ in range(n_layers)])
        self.mixers = nnx.List([nnx.Linear(H, H, rngs=rngs) for _ in range(n_layers)])
        self.norms = nnx.List([nnx.LayerNorm(H, rngs=rngs) for _ in range(n_layers)])
        self.decoder = nnx.Linear(H, N_CLASSES, rngs=rngs)

    def __call__(self, x, step_rescale=1.0):
        u = self.encoder(x)
        for layer, mix, norm in zip(self.layers, self.mixers, self.norms, strict=True):
            y = mix(jax.nn.gelu(layer(u, step_rescale=step_rescale)))
            u = norm(u + y)
        return self.decoder(u.mean(axis=1))


def _rnn(name: str, H: int, seed: int, L: int):
    rngs = nnx.Rngs(seed)
    if name in HIPPO:
        opts = hippo_cell_options(HIPPO[name], **({"theta": float(L)} if name == "lmu" else {}))
        if HIPPO[name] == "random":
            opts["seed"] = seed
        if name == "rand_stable":
            opts["measure_params"] = {"max_real": RAND_STABLE_MAX_REAL}
        if name in ("legt",):
            opts["dt"] = 1.0 / L  # the window covers the sequence (LegT theta = 2: 2L samples)
        cell = HiPPORNNCell(1, H, N=-1, **opts, rngs=rngs)
    else:
        cell = BASELINES[name](1, H, rngs=rngs)
    return RNNClassifier(cell, H, rngs=rngs)


def count_params(model) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def build(name: str, budget: int, L: int, seed: int = 0):
    """Model ``name`` with about ``budget`` parameters (hidden size searched), and a size note."""
    if name in SSMS:
        best = None
        for H in range(4, 257, 4):
            N = {"s4": H // 2, "s4d": H, "s5": max(8, 2 * H)}[name]
            m = nnx.eval_shape(
                lambda H=H, N=N: SSMClassifier(SSMS[name], H, 2, N, L, rngs=nnx.Rngs(0))
            )
            c = count_params(m)
            if best is None or abs(c - budget) < abs(best[1] - budget):
                best = ((H, N), c)
            if c > 2 * budget:
                break
        (H, N), _ = best
        return SSMClassifier(SSMS[name], H, 2, N, L, rngs=nnx.Rngs(seed)), f"H={H}, 2 layers, N={N}"
    best = None
    for H in range(2, 513):
        m = nnx.eval_shape(lambda H=H: _rnn(name, H, 0, L))
        c = count_params(m)
        if best is None or abs(c - budget) < abs(best[1] - budget):
            best = (H, c)
        if c > 2 * budget:
            break
    H = best[0]
    note = f"hidden {H}" + (f", N={H}" if name in HIPPO else "")
    return _rnn(name, H, seed, L), note


# ------------------------------------------------------------------------- training


@dataclasses.dataclass(frozen=True)
class Recipe:
    epochs: int = 5
    lr: float = 2e-3
    ssm_lr: float = 1e-3
    batch: int = 64


def train(model, x_tr, y_tr, recipe: Recipe, *, seed: int, desc: str, quiet: bool):
    """Trains in place-free NNX style; returns ``(graphdef, params, rest, seconds)``."""
    t0 = time.perf_counter()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    n = len(x_tr)
    batch = min(recipe.batch, n)
    spe = n // batch
    total = recipe.epochs * spe
    warm = max(1, total // 10)

    def sched(peak):
        return optax.warmup_cosine_decay_schedule(0.0, peak, warm, max(total, warm + 1))

    tx = optax.multi_transform(
        {"default": optax.adam(sched(recipe.lr)), "ssm": optax.adam(sched(recipe.ssm_lr))},
        hippox.optax_labels,
    )
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, x, y):
        def loss_fn(p):
            logits = nnx.merge(graphdef, p, rest)(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, g = jax.value_and_grad(loss_fn)(params)
        upd, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, upd), opt, loss

    rng = np.random.default_rng(seed)
    bar = tqdm(total=total, desc=desc, unit="step", leave=False, disable=quiet or None)
    for _ in range(recipe.epochs):
        order = rng.permutation(n)
        for s in range(spe):
            idx = order[s * batch : (s + 1) * batch]
            x = jnp.asarray(x_tr[idx, :, None], jnp.float32)
            params, opt, loss = step(params, opt, x, jnp.asarray(y_tr[idx]))
            bar.update()
            bar.set_postfix(loss=f"{float(loss):.3f}")
    bar.close()
    secs = time.perf_counter() - t0
    if not quiet:  # one line per run, also in a log where the bar is off
        tqdm.write(f"{desc}: final loss {float(loss):.3f}, {secs:.0f} s", file=sys.stderr)
    return graphdef, params, rest, secs


def accuracy(graphdef, params, rest, x, y, *, step_rescale: float = 1.0, batch: int = 256):
    @jax.jit
    def predict(params, x):
        return jnp.argmax(nnx.merge(graphdef, params, rest)(x, step_rescale), -1)

    correct = 0
    for i in range(0, len(x), batch):
        pred = predict(params, jnp.asarray(x[i : i + batch, :, None], jnp.float32))
        correct += int(np.sum(np.asarray(pred) == y[i : i + batch]))
    return correct / len(x)


def last_samples_probe(x_tr, y_tr, x_te, y_te, ks) -> dict[int, float]:
    """Test accuracy of a linear classifier that sees only the last ``k`` samples.

    How much memory the task needs: a model that remembers only the last ``k`` steps can
    do at most about this well (scikit-learn's logistic regression, float64).
    """
    from sklearn.linear_model import LogisticRegression

    out = {}
    for k in ks:
        clf = LogisticRegression(max_iter=3000).fit(x_tr[:, -k:], y_tr)
        out[k] = clf.score(x_te[:, -k:], y_te)
    return out


def mean_std(values) -> str:
    v = 100 * np.asarray(values)
    return f"{v.mean():.1f} ± {v.std():.1f}" if len(v) > 1 else f"{v.mean():.1f}"


def write_outputs(out: pathlib.Path, markdown: str, plot: Callable[[pathlib.Path], None]):
    """Writes ``out.md`` and ``out.png``; returns their paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    md, png = out.with_suffix(".md"), out.with_suffix(".png")
    md.write_text(markdown + "\n")
    plot(png)
    return md, png


def device_line() -> str:
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} CPUs, jax {jax.__version__} ({jax.default_backend()})"


__all__ = [
    "MODELS",
    "Recipe",
    "accuracy",
    "build",
    "count_params",
    "device_line",
    "digits",
    "last_samples_probe",
    "math",
    "mean_std",
    "permute",
    "resample",
    "train",
    "write_outputs",
]
