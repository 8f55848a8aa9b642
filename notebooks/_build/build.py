"""Builds (and optionally executes) the hippox notebooks from their Python sources.

Each ``notebooks/_build/NN_name.py`` is a plain Python file in the "percent" cell
format:

* ``# %%`` starts a code cell;
* ``# %% [markdown]`` starts a markdown cell whose lines are comments (``# `` is
  stripped);
* ``# %% [install]`` marks where the install cell goes (the first code cell of every
  notebook). It is filled in from `install_cell` below, so the package URL lives in
  one place here and in exactly one cell of each notebook.

Usage (from the repository root)::

    .venv/bin/python notebooks/_build/build.py                # build + execute, full size
    .venv/bin/python notebooks/_build/build.py --no-execute   # build only (no outputs)
    .venv/bin/python notebooks/_build/build.py --small 03     # execute with SMALL sizes

Execution uses nbclient with the ``python3`` kernel of the running interpreter, in a
temporary working directory (so a notebook cannot depend on local paths), and stores
the outputs in ``notebooks/NN_name.ipynb``. Sources run as plain scripts too
(``MPLBACKEND=Agg python notebooks/_build/01_hippo_operators.py``).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys
import tempfile
import time

import nbformat

HERE = pathlib.Path(__file__).resolve().parent
NOTEBOOK_DIR = HERE.parent

# ---------------------------------------------------------------------------------------
# THE REPOSITORY URL: set it here, and only here. It is used for the "Open in Colab"
# badges (and the README's Colab links follow the same pattern). The install cell does not
# need it: it installs from a wheel or the clone when present, else from PyPI.
REPO = "hippox-dev/hippox"
# ---------------------------------------------------------------------------------------
#: Requirement installed from PyPI when no wheel or clone is at hand (>= 0.1: the
#: rewritten hippox, not the 0.0.x releases).
PYPI_SPEC = "hippox[examples]>=0.1"

_MARKER = re.compile(r"^# %%(?:\s*\[(?P<kind>\w+)\])?\s*$")


def install_cell() -> str:
    """The first code cell of every notebook: install hippox when it is missing.

    In order: a wheel next to the notebook or in ``../dist`` (``python -m build``), the
    clone the notebook sits in (``../pyproject.toml`` of hippox), else PyPI.
    """
    return (
        "# Installs hippox when it is not importable (e.g. on Google Colab): from a wheel\n"
        "# next to this notebook or in ../dist, from the clone it sits in, else from PyPI.\n"
        "try:\n"
        "    import hippox\n"
        "except ImportError:\n"
        "    import glob\n"
        "    import pathlib\n"
        "\n"
        '    wheels = sorted(glob.glob("hippox-*.whl") + glob.glob("../dist/hippox-*.whl"))\n'
        '    clone = pathlib.Path("../pyproject.toml")\n'
        "    if wheels:\n"
        '        %pip install -q "{wheels[-1]}[examples]"\n'
        "    elif clone.is_file() and 'name = \"hippox\"' in clone.read_text():\n"
        '        %pip install -q "..[examples]"\n'
        "    else:\n"
        f'        %pip install -q "{PYPI_SPEC}"\n'
        "    import hippox"
    )


def colab_badge(name: str) -> str:
    url = f"https://colab.research.google.com/github/{REPO}/blob/main/notebooks/{name}.ipynb"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def _strip_comment(line: str) -> str:
    if line.startswith("# "):
        return line[2:]
    if line.rstrip() in ("#", ""):
        return ""
    raise ValueError(f"markdown line must start with '# ' or be '#', got {line!r}")


def parse(source: str) -> list[tuple[str, str]]:
    """Splits percent-format source into ``(kind, text)`` cells (kind: code, markdown,
    install). Text before the first marker (a module docstring) is dropped."""
    cells: list[tuple[str, list[str]]] = []
    for line in source.splitlines():
        match = _MARKER.match(line)
        if match:
            cells.append((match.group("kind") or "code", []))
        elif cells:
            cells[-1][1].append(line)
    out = []
    for kind, lines in cells:
        if kind == "markdown":
            lines = [_strip_comment(line) for line in lines]
        text = "\n".join(lines).strip("\n")
        if kind not in ("code", "markdown", "install"):
            raise ValueError(f"unknown cell kind {kind!r}")
        if text or kind == "install":
            out.append((kind, text))
    return out


def build(src: pathlib.Path) -> nbformat.NotebookNode:
    """The unexecuted notebook of one source file."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "colab": {"provenance": []},
    }
    first_markdown = True
    for kind, text in parse(src.read_text()):
        if kind == "markdown":
            if first_markdown:
                text = f"{colab_badge(src.stem)}\n\n{text}"
                first_markdown = False
            nb.cells.append(nbformat.v4.new_markdown_cell(text))
        elif kind == "install":
            nb.cells.append(nbformat.v4.new_code_cell(install_cell()))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(text))
    for i, cell in enumerate(nb.cells):  # stable ids: diffs stay small between builds
        cell["id"] = f"{src.stem[:2]}-{i:02d}"
    nbformat.validate(nb)
    return nb


def execute(nb: nbformat.NotebookNode, *, small: bool, timeout: int = 600) -> None:
    """Runs ``nb`` in place with nbclient (``python3`` kernel) in a temporary directory."""
    from nbclient import NotebookClient

    old = os.environ.get("HIPPOX_NOTEBOOK_SMALL")
    os.environ["HIPPOX_NOTEBOOK_SMALL"] = "1" if small else "0"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            NotebookClient(
                nb,
                kernel_name="python3",
                timeout=timeout,
                record_timing=False,
                resources={"metadata": {"path": tmp}},
            ).execute()
    finally:
        if old is None:
            del os.environ["HIPPOX_NOTEBOOK_SMALL"]
        else:
            os.environ["HIPPOX_NOTEBOOK_SMALL"] = old
    nb.metadata.pop("widgets", None)


def sources(selected: list[str] | None = None) -> list[pathlib.Path]:
    found = sorted(p for p in HERE.glob("[0-9][0-9]_*.py"))
    if selected:
        found = [p for p in found if any(p.stem.startswith(s) for s in selected)]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook name prefixes (default: all)")
    parser.add_argument("--no-execute", action="store_true", help="write without outputs")
    parser.add_argument("--small", action="store_true", help="execute with SMALL sizes")
    args = parser.parse_args(argv)
    for src in sources(args.names):
        nb = build(src)
        out = NOTEBOOK_DIR / f"{src.stem}.ipynb"
        if not args.no_execute:
            start = time.perf_counter()
            execute(nb, small=args.small)
            print(f"executed {src.stem} in {time.perf_counter() - start:.1f} s", flush=True)
        nbformat.write(nb, out)
        print(f"wrote {out.relative_to(NOTEBOOK_DIR.parent)} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
