"""Timescale robustness: train at one sampling rate, test at another (the HiPPO blog's table).

The signal is a digit (scikit-learn's bundled 8 × 8 digits, upsampled to 16 × 16) read
pixel by pixel, ``L = 256`` samples at the base rate ("1×"). The test set is resampled
in time to 2× the rate (linear interpolation, ``L = 512``) and to 0.5× (the mean of
neighbouring pairs, ``L = 128``). Two directions, as in the paper: train at 1× and test
at 1×, 2× and 0.5×; train at 2× and test at 2× and 1×.

HiPPO-LegS is scale-invariant (its memory of a resampled signal is nearly unchanged);
LegT and the LMU have a fixed window in samples; GRU and LSTM have no notion of time;
S4D and S5 are told the rate change through ``step_rescale = train rate / test rate``
(their ``dt`` is rescaled), the adaptation an SSM offers when the rate is known.

Usage (from the repository root)::

    .venv/bin/python examples/timescale.py                 # the default sizes
    .venv/bin/python examples/timescale.py --quick         # a smoke run

Writes ``<out>.md`` and ``<out>.png`` and prints their paths.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Sequence

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _zoo  # noqa: E402

DEFAULT_MODELS = ("legs", "gru", "lstm", "lmu", "legt", "s4d", "s5")
#: (train rate, test rates) of the two directions.
DIRECTIONS = ((1.0, (1.0, 2.0, 0.5)), (2.0, (2.0, 1.0)))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=_zoo.MODELS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--budget", type=int, default=4000, help="parameters per model")
    ap.add_argument("--side", type=int, default=16, help="image side (L = side² at 1×)")
    ap.add_argument("--subset", type=int, default=None)
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/timescale"))
    ap.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    directions = DIRECTIONS
    if args.quick:
        args.side, args.subset, args.epochs, args.budget = 4, 64, 1, 300
        args.seeds, directions = args.seeds[:1], DIRECTIONS[:1]
        if args.models == list(DEFAULT_MODELS):
            args.models = ["legs", "gru", "s4d"]
    recipe = _zoo.Recipe(epochs=args.epochs)
    x_tr, y_tr, x_te, y_te = _zoo.digits(args.side, subset=args.subset)
    rows, accs = [], {}
    for train_rate, test_rates in directions:
        xtr = _zoo.resample(x_tr, train_rate)
        for name in args.models:
            res = {r: [] for r in test_rates}
            for seed in args.seeds:
                model, note = _zoo.build(name, args.budget, xtr.shape[1], seed)
                g, p, rest, _ = _zoo.train(
                    model,
                    xtr,
                    y_tr,
                    recipe,
                    seed=seed,
                    desc=f"{name} @{train_rate}x",
                    quiet=args.quiet,
                )
                for r in test_rates:
                    xte = _zoo.resample(x_te, r)
                    res[r].append(_zoo.accuracy(g, p, rest, xte, y_te, step_rescale=train_rate / r))
            accs[(train_rate, name)] = res
            cells = ", ".join(f"{r:g}×: {_zoo.mean_std(res[r])}" for r in test_rates)
            base = sum(res[train_rate]) / len(res[train_rate])
            kept = " / ".join(
                f"{100 * (sum(res[r]) / len(res[r])) / base:.0f}%" if base else "–"
                for r in test_rates
                if r != train_rate
            )
            rows.append(f"| {name} | {note} | {train_rate:g}× | {cells} | {kept} |")
    head = [
        f"Digits {args.side}×{args.side} read pixel by pixel (L = {args.side**2} at 1×), "
        f"{len(x_tr)} train / {len(x_te)} test, {args.epochs} epochs, seeds {args.seeds}, "
        f"budget ~{args.budget:,} parameters; {_zoo.device_line()}.",
        "",
        "| model | size | trained at | test accuracy (%) at each rate | kept at the other rates |",
        "|---|---|---|---|---|",
    ]

    def plot(path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        fig, axes = plt.subplots(1, len(directions), figsize=(4 + 2 * len(directions), 3.5))
        axes = np.atleast_1d(axes)
        for ax, (tr, rates) in zip(axes, directions, strict=True):
            w = 0.8 / len(rates)
            for i, r in enumerate(rates):
                vals = [100 * np.mean(accs[(tr, m)][r]) for m in args.models]
                ax.bar(np.arange(len(args.models)) + i * w, vals, w, label=f"test {r:g}×")
            ax.set_xticks(np.arange(len(args.models)) + w * (len(rates) - 1) / 2, args.models)
            ax.set_title(f"trained at {tr:g}×")
            ax.set_ylabel("test accuracy (%)")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    md, png = _zoo.write_outputs(args.out, "\n".join(head + rows), plot)
    print("\n".join(head + rows))
    print(f"table: {md}\nplot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
