"""Test configuration: x64 on (float64 reference computations), warnings are errors.

Optional dependencies: a test file (or a hippox module collected for its doctests) that
imports an optional package which is not installed is not collected, and a doctest
that imports one is skipped, so a core-only install (``pip install hippox`` plus the
test tools) runs exactly the core tests. The report header says which packages were
missing and where hippox was imported from. Two switches, set by CI:

* ``HIPPOX_TEST_FULL=1``: every optional package must be installed (nothing is left
  out silently);
* ``HIPPOX_TEST_INSTALLED=1``: hippox must be imported from an installed package, not
  from the source tree (the tests then check what users get).
"""

import ast
import functools
import importlib.util
import inspect
import os
import pathlib
import re
import zlib

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: Optional top-level modules (the extras), and the hippox namespaces that need them.
OPTIONAL = (
    "flax",
    "optax",
    "orbax",
    "haiku",
    "equinox",
    "sklearn",
    "matplotlib",
    "nbclient",
    "nbformat",
    "ipykernel",
    "tqdm",
)
NEEDS = {
    "hippox.nnx": "flax",
    "hippox.linen": "flax",
    "hippox.haiku": "haiku",
    "hippox.equinox": "equinox",
}


@functools.cache
def _installed(top: str) -> bool:
    return importlib.util.find_spec(top) is not None


def _needed(module: str) -> str | None:
    """The optional top-level module ``module`` needs, or None."""
    for space, top in NEEDS.items():
        if module == space or module.startswith(space + "."):
            return top
    top = module.split(".")[0]
    return top if top in OPTIONAL else None


def _module_level(body):
    """Statements run at import time: the body, and inside try / if / with blocks."""
    for node in body:
        yield node
        if isinstance(node, (ast.Try, ast.If, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    yield from _module_level(getattr(child, "body", None) or [child])


def _missing_imports(source: str) -> set[str]:
    """Optional modules imported at the top level of ``source`` that are not installed."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = []
    for node in _module_level(tree.body):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    needed = {_needed(n) for n in names} - {None}
    return {top for top in needed if not _installed(top)}


_IGNORED: list[str] = []


class _OptionalImports:
    """Registered as a plugin (not a conftest hook) so that it also sees the hippox
    package collected for its doctests, which lies outside ``tests/``."""

    @staticmethod
    def pytest_ignore_collect(collection_path, config):
        path = pathlib.Path(collection_path)
        if path.suffix != ".py" or path.name == "conftest.py":
            return None
        missing = _missing_imports(path.read_text(encoding="utf-8"))
        if "hippox" in path.parts:  # a hippox module collected for its doctests
            parts = list(path.with_suffix("").parts)
            dotted = ".".join(parts[len(parts) - 1 - parts[::-1].index("hippox") :])
            top = _needed(dotted.removesuffix(".__init__"))
            if top is not None and not _installed(top):
                missing.add(top)
        if missing:
            _IGNORED.append(f"{path.name} (needs {', '.join(sorted(missing))})")
            return True
        return None


_DOCTEST_IMPORT = re.compile(r"^\s*(?:import|from)\s+([\w.]+)", re.M)


def _source(item) -> str:
    dtest = getattr(item, "dtest", None)
    if dtest is not None:
        return "\n".join(ex.source for ex in dtest.examples)
    function = getattr(item, "function", None)
    try:
        return inspect.getsource(function) if function is not None else ""
    except (OSError, TypeError):
        return ""


def pytest_collection_modifyitems(config, items):
    """Skips a test or doctest whose own body imports a missing optional package."""
    for item in items:
        needed = {_needed(m) for m in _DOCTEST_IMPORT.findall(_source(item))} - {None}
        missing = sorted(top for top in needed if not _installed(top))
        if missing:
            item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)}"))


def _hippox_location() -> pathlib.Path:
    spec = importlib.util.find_spec("hippox")
    return pathlib.Path(spec.origin).resolve().parent


def pytest_configure(config):
    if not config.pluginmanager.has_plugin("hippox-optional-imports"):
        config.pluginmanager.register(_OptionalImports(), "hippox-optional-imports")
    if os.environ.get("HIPPOX_TEST_FULL") == "1":
        missing = [top for top in OPTIONAL if not _installed(top)]
        if missing:
            raise pytest.UsageError(f"HIPPOX_TEST_FULL=1 but not installed: {missing}")
    if os.environ.get("HIPPOX_TEST_INSTALLED") == "1" and _hippox_location() == ROOT / "hippox":
        raise pytest.UsageError(
            "HIPPOX_TEST_INSTALLED=1 but hippox is imported from the source tree "
            f"({ROOT / 'hippox'}); install it without -e and run `pytest`, not `python -m pytest`."
        )


def pytest_report_header(config):
    missing = [top for top in OPTIONAL if not _installed(top)]
    return [
        f"hippox from {_hippox_location()}; jax {jax.__version__}",
        f"optional packages missing: {', '.join(missing) or 'none'}",
    ]


def pytest_terminal_summary(terminalreporter):
    if _IGNORED:
        terminalreporter.write_line(
            f"not collected (optional packages missing): {'; '.join(_IGNORED)}"
        )


@pytest.fixture
def rng(request):
    """A fresh NumPy Generator per test, seeded from the test id (reproducible, varied)."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)
