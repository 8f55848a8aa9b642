"""Online function approximation with HiPPO memories (the HiPPO paper's Figure 4).

Generates band-limited white noise, feeds it sample by sample into HiPPO memories of
size N, and reconstructs the past from the final coefficients alone:

* ``legs`` (scaled Legendre) remembers the *whole* history, however long: it runs
  over all ``--steps`` samples (default 1,000,000) in O(N) memory;
* ``legt``, ``lagt`` and ``fout`` remember a recent window (sliding Legendre window,
  exponentially decaying Laguerre, sliding Fourier window). Their window is set to
  ``--window`` samples and they are run over the last few windows of the signal (what
  lies further back is forgotten by construction).

Prints a table (measure, steps, N, relative RMS reconstruction error, time) and writes
a picture of the signal against the reconstructions.

Usage::

    python examples/online_approximation.py                       # defaults, ~1 minute
    python examples/online_approximation.py --steps 100000 --N 64 --out approx.png
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import hippox

# The window of each LTI memory, in its own time units (hippox.basis documents them).
WINDOW = {"legt": 2.0, "lagt": None, "fout": 2.0}


def band_limited_noise(steps: int, cutoff: float, seed: int) -> np.ndarray:
    """White noise low-passed at ``cutoff`` cycles per ``steps`` samples, unit RMS."""
    rng = np.random.default_rng(seed)
    spectrum = np.zeros(steps // 2 + 1, complex)
    k = int(cutoff)
    spectrum[1 : k + 1] = rng.normal(size=k) + 1j * rng.normal(size=k)
    f = np.fft.irfft(spectrum, n=steps)
    return (f / np.sqrt(np.mean(f**2))).astype(np.float32)


def rel_rms(approx: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((approx - truth) ** 2) / np.mean(truth**2)))


def run_legs(f: np.ndarray, N: int, n_eval: int):
    """LegS over the whole signal; reconstruct the whole history from c_final."""
    t0 = time.perf_counter()
    c = jax.block_until_ready(hippox.hippo_project(jnp.asarray(f), "legs", N, final_only=True))
    elapsed = time.perf_counter() - t0
    s = np.linspace(0.0, 1.0, n_eval, endpoint=False) + 0.5 / n_eval  # fraction of history ago
    approx = np.asarray(hippox.reconstruct(c, "legs", s, scaled=True))
    L = len(f)
    idx = np.clip(np.round((1.0 - s) * L).astype(int) - 1, 0, L - 1)
    return idx, approx, f[idx], elapsed


def run_lti(f: np.ndarray, measure: str, N: int, window: int, n_eval: int, lti_windows: int):
    """An LTI memory with a window of `window` samples, over the last windows of f."""
    length = WINDOW[measure]
    if length is None:  # lagt: exponential decay e^{-s}; call ~12 time units its window
        length = 12.0
    dt = length / window
    chunk = f[-lti_windows * window :]
    t0 = time.perf_counter()
    c = jax.block_until_ready(
        hippox.hippo_project(jnp.asarray(chunk), measure, N, dt=dt, final_only=True)
    )
    elapsed = time.perf_counter() - t0
    j = np.linspace(0, window - 1, n_eval).astype(int)  # samples ago
    approx = np.asarray(hippox.reconstruct(c, measure, j * dt))
    idx = len(f) - 1 - j
    return idx, approx, f[idx], elapsed, len(chunk)


def plot(path: pathlib.Path, f: np.ndarray, results: dict, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(11, 6.5), constrained_layout=True)
    L = len(f)
    stride = max(1, L // 20000)
    ax0.plot(np.arange(0, L, stride), f[::stride], color="0.7", lw=2.5, label="signal")
    if "legs" in results:
        idx, approx = results["legs"][:2]
        order = np.argsort(idx)
        ax0.plot(idx[order], approx[order], "--", color="C3", lw=1.0, label="LegS reconstruction")
    ax0.set_title(f"LegS memory of the whole history ({L:,} steps) from its final state")
    ax0.set_xlabel("step")
    ax0.legend(loc="upper right")
    lo = L - window
    ax1.plot(np.arange(lo, L), f[lo:], color="0.7", lw=3.0, label="signal")
    for i, (measure, res) in enumerate(results.items()):
        if measure == "legs":
            continue
        idx, approx = res[:2]
        ax1.plot(idx, approx, "--", color=f"C{i}", lw=1.0, label=f"{measure} reconstruction")
    ax1.set_title(f"Window memories (last {window:,} steps)")
    ax1.set_xlabel("step")
    ax1.legend(loc="upper left", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="signal length (LegS)")
    parser.add_argument("--N", type=int, default=256, help="memory size")
    parser.add_argument(
        "--measures",
        nargs="+",
        default=["legs", "legt", "lagt", "fout"],
        choices=["legs", "legt", "lagt", "fout"],
    )
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help="window of LTI memories in samples (default: steps/50)",
    )
    parser.add_argument(
        "--lti-windows", type=int, default=4, help="windows of signal fed to LTI memories"
    )
    parser.add_argument(
        "--cutoff",
        type=float,
        default=None,
        help="noise bandwidth in cycles over the whole signal (default: N/4)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out/online_approximation.png", help="PNG path")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, only the table")
    args = parser.parse_args(argv)
    from tqdm.auto import tqdm  # the examples extra

    say = (lambda s: None) if args.quiet else tqdm.write

    cutoff = args.cutoff if args.cutoff is not None else max(2.0, args.N / 4)
    f = band_limited_noise(args.steps, cutoff, args.seed)
    window = args.window if args.window is not None else max(100, args.steps // 50)
    window = min(window, args.steps // max(1, args.lti_windows))
    say(
        f"signal: {args.steps:,} samples of band-limited noise (cutoff {cutoff:g} cycles), "
        f"N = {args.N}, jax on {jax.devices()[0].platform}"
    )
    rows, results = [], {}
    bar = tqdm(args.measures, desc="memories", unit="measure", disable=args.quiet or None)
    for measure in bar:
        bar.set_postfix(measure=measure)
        if measure == "legs":
            idx, approx, truth, elapsed = run_legs(f, args.N, 4000)
            steps = args.steps
        else:
            idx, approx, truth, elapsed, steps = run_lti(
                f, measure, args.N, window, 2000, args.lti_windows
            )
        results[measure] = (idx, approx)
        rows.append((measure, steps, args.N, rel_rms(approx, truth), elapsed))
        say(f"  {measure} done in {elapsed:.2f} s")

    print("| measure | steps | N | rel. RMS error | time (s, incl. compile) |")
    print("|---|---|---|---|---|")
    for measure, steps, N, err, elapsed in rows:
        print(f"| {measure} | {steps:,} | {N} | {err:.2e} | {elapsed:.2f} |")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(out, f, results, window)
    print(f"\npicture written to {out.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
