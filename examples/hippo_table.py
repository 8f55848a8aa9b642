"""The HiPPO paper's permuted-MNIST table, on a stand-in that runs offline.

No download is possible here, so the task is scikit-learn's bundled digits (1797 8 × 8
images) upsampled to 28 × 28 (bilinear) and read pixel by pixel, ``L = 784`` like MNIST,
in the natural order (``seq``) and in one fixed permuted order (``perm``, seed 0). The
models (`examples/_zoo.py`) are trained at a matched parameter budget with the same
recipe and a few seeds; the table reports the test accuracy (mean ± std over seeds),
next to the paper's permuted-MNIST numbers for the ordering.

Usage (from the repository root)::

    .venv/bin/python examples/hippo_table.py                  # the default sizes
    .venv/bin/python examples/hippo_table.py --quick          # seconds: a smoke run
    .venv/bin/python examples/hippo_table.py --models legs gru --seeds 0 1 2 --epochs 10

Writes ``<out>.md`` (the table) and ``<out>.png`` (a bar chart) and prints their paths.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Sequence

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _zoo  # noqa: E402

#: The paper's permuted-MNIST test accuracies (HiPPO, Table 1), for the ordering.
PAPER = {
    "legs": 98.34,
    "lagt": 98.15,
    "legt": 98.00,
    "lmu": 97.08,
    "exprnn": 94.67,
    "gru": 93.04,
    "lstm": 92.54,
    "mgu": 89.37,
    "rnn": 52.98,
    "rand": 69.93,
}
#: Last-``k`` sample counts of the memory probe (`_zoo.last_samples_probe`).
PROBE_KS = (8, 16, 32, 64, 128, 256)
DEFAULT_MODELS = (
    "legs",
    "lagt",
    "legt",
    "lmu",
    "rand",
    "rand_stable",
    "gru",
    "lstm",
    "mgu",
    "rnn",
    "s4",
    "s4d",
    "s5",
)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=_zoo.MODELS)
    ap.add_argument("--tasks", nargs="+", default=["seq", "perm"], choices=["seq", "perm"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--budget", type=int, default=4000, help="parameters per model")
    ap.add_argument("--side", type=int, default=28, help="image side (L = side²)")
    ap.add_argument("--subset", type=int, default=None, help="training images (None: all)")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/hippo_table"))
    ap.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.quick:
        args.side, args.subset, args.epochs, args.budget = 4, 64, 1, 300
        args.seeds, args.tasks = args.seeds[:1], ["perm"]
        if args.models == list(DEFAULT_MODELS):
            args.models = ["legs", "gru", "s4d"]
    recipe = _zoo.Recipe(epochs=args.epochs)
    x_tr, y_tr, x_te, y_te = _zoo.digits(args.side, subset=args.subset)
    L = x_tr.shape[1]
    rows, accs, probe_rows = [], {}, []
    ks = [k for k in PROBE_KS if k < L] + [L]
    for task in args.tasks:
        xtr, xte = (x_tr, x_te) if task == "seq" else (_zoo.permute(x_tr), _zoo.permute(x_te))
        probe = _zoo.last_samples_probe(xtr, y_tr, xte, y_te, ks)
        probe_rows.append(f"| {task} | " + " | ".join(f"{100 * probe[k]:.1f}" for k in ks) + " |")
        for name in args.models:
            runs, secs, note, n_params = [], 0.0, "", 0
            for seed in args.seeds:
                model, note = _zoo.build(name, args.budget, L, seed)
                n_params = _zoo.count_params(model)
                g, p, r, s = _zoo.train(
                    model,
                    xtr,
                    y_tr,
                    recipe,
                    seed=seed,
                    desc=f"{name} {task} s{seed}",
                    quiet=args.quiet,
                )
                runs.append(_zoo.accuracy(g, p, r, xte, y_te))
                secs += s
            accs[(task, name)] = runs
            paper = f"{PAPER[name]:.2f}" if name in PAPER else "–"
            rows.append(
                f"| {name} | {task} | {note} | {n_params:,} | {_zoo.mean_std(runs)} | {paper} | "
                f"{secs:.0f} s |"
            )
    head = [
        f"Digits upsampled to {args.side}×{args.side} (L = {L}), {len(x_tr)} train / "
        f"{len(x_te)} test images, {args.epochs} epochs, seeds {args.seeds}, budget "
        f"~{args.budget:,} parameters; {_zoo.device_line()}.",
        "",
        "| model | task | size | parameters | test acc (%) | paper pMNIST (%) | train time |",
        "|---|---|---|---|---|---|---|",
    ]

    def plot(path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        fig, ax = plt.subplots(figsize=(1 + 0.7 * len(args.models), 3.5))
        w = 0.8 / len(args.tasks)
        for i, task in enumerate(args.tasks):
            vals = [100 * np.mean(accs[(task, m)]) for m in args.models]
            errs = [100 * np.std(accs[(task, m)]) for m in args.models]
            ax.bar(np.arange(len(args.models)) + i * w, vals, w, yerr=errs, label=task)
        ax.set_xticks(np.arange(len(args.models)) + w * (len(args.tasks) - 1) / 2, args.models)
        ax.set_ylabel("test accuracy (%)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    probe_head = [
        "",
        "Memory the task needs: test accuracy (%) of a linear classifier (logistic "
        "regression) that sees only the last k samples.",
        "",
        "| task | " + " | ".join(f"k = {k}" for k in ks) + " |",
        "|---|" + "---|" * len(ks),
    ]
    text = "\n".join(head + rows + probe_head + probe_rows)
    md, png = _zoo.write_outputs(args.out, text, plot)
    print(text)
    print(f"table: {md}\nplot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
