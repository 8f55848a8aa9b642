"""Runs every benchmark and prints one table of medians and ratios.

Usage (from the repository root)::

    .venv/bin/python benchmarks/run.py            # full sizes (minutes)
    .venv/bin/python benchmarks/run.py --quick    # small sizes (seconds), a smoke test
    .venv/bin/python benchmarks/run.py --only kernels --markdown out.md

Each ``benchmarks/bench_<name>.py`` module defines ``run(quick) -> list[Row]``. The
"ratio" column is ``baseline median / row median`` within a group and parameter set
(> 1 means faster than the baseline measured in the same run).
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import platform
import sys

import jax

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _harness import Row, fmt_bytes, fmt_time  # noqa: E402


def discover() -> list[str]:
    here = pathlib.Path(__file__).parent
    return sorted(p.stem[len("bench_") :] for p in here.glob("bench_*.py"))


def machine() -> str:
    dev = jax.devices()[0]
    return (
        f"{platform.machine()} {platform.processor() or ''} | {jax.device_count()}× "
        f"{dev.device_kind} ({dev.platform}) | jax {jax.__version__} | python "
        f"{platform.python_version()}"
    )


def table(rows: list[Row]) -> str:
    base = {(r.group, r.params): r.median_s for r in rows if r.baseline}
    head = "| group | method | params | median | compile | memory | ratio vs baseline | note |"
    out = [head, "|" + "---|" * 8]
    for r in rows:
        b = base.get((r.group, r.params))
        ratio = "baseline" if r.baseline else (f"{b / r.median_s:.2f}×" if b else "")
        out.append(
            f"| {r.group} | {r.name} | {r.params} | {fmt_time(r.median_s)} | "
            f"{fmt_time(r.compile_s)} | {fmt_bytes(r.memory_bytes)} | {ratio} | {r.note} |"
        )
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--only", nargs="*", choices=discover(), help="benchmarks to run")
    parser.add_argument("--markdown", help="also write the table to this Markdown file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, only the table")
    args = parser.parse_args(argv)
    from tqdm.auto import tqdm

    rows: list[Row] = []
    bar = tqdm(args.only or discover(), desc="benchmarks", disable=args.quiet or None)
    for name in bar:
        bar.set_postfix(running=f"bench_{name}")
        mod = importlib.import_module(f"bench_{name}")
        rows.extend(mod.run(quick=args.quick))
    text = f"Machine: {machine()}\n\n" + table(rows)
    print(text)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
