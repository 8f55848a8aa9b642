"""The public API of hippox, for the docs site and ``tests/test_docs.py``.

`NAMESPACES` lists every public namespace; each one's ``__all__`` is its public API.
`missing_docs` finds the public names without a docstring of their own: functions,
classes and modules need ``__doc__`` (a NamedTuple's generated ``Name(a, b)`` does not
count), constants a string literal right after the assignment or ``#:`` comment lines
right above it (the two forms griffe and griffe-sphinx read). `api_page` writes the
mkdocstrings page of a namespace. Imports only the standard library and hippox.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib

#: ``(namespace, needs)``: the optional distribution a namespace needs, or None.
NAMESPACES: tuple[tuple[str, str | None], ...] = (
    ("hippox", None),
    ("hippox.initializers", None),
    ("hippox.nnx", "flax"),
    ("hippox.linen", "flax"),
    ("hippox.haiku", "haiku"),
    ("hippox.equinox", "equinox"),
)


def public_names(namespace: str) -> list[str]:
    """The sorted ``__all__`` of a namespace."""
    module = importlib.import_module(namespace)
    names = getattr(module, "__all__", None)
    if names is None:
        raise ValueError(f"`{namespace}` must define __all__.")
    return sorted(names)


def _module_tree(module_name: str) -> tuple[ast.Module, list[str]] | None:
    module = importlib.import_module(module_name)
    path = getattr(module, "__file__", None)
    if path is None:
        return None
    source = pathlib.Path(path).read_text(encoding="utf-8")
    return ast.parse(source), source.splitlines()


def _resolve_package(module_name: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module_name.split(".")
    module = importlib.import_module(module_name)
    if not hasattr(module, "__path__"):  # a module, not a package: drop its own name
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def attribute_doc(module_name: str, name: str, _depth: int = 0) -> str | None:
    """The docstring of a module-level constant, following ``from x import name`` chains."""
    parsed = _module_tree(module_name)
    if parsed is None or _depth > 5:
        return None
    tree, lines = parsed
    body = tree.body
    for i, node in enumerate(body):
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        if name in targets:
            nxt = body[i + 1] if i + 1 < len(body) else None
            if (
                isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                return inspect.cleandoc(nxt.value.value)
            comments = []
            j = node.lineno - 2
            while j >= 0 and lines[j].lstrip().startswith("#:"):
                comments.insert(0, lines[j].lstrip()[2:].strip())
                j -= 1
            return " ".join(comments) or None
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source = _resolve_package(module_name, node)
                    try:
                        importlib.import_module(f"{source}.{alias.name}")
                    except ImportError:
                        return attribute_doc(source, alias.name, _depth + 1)
                    return importlib.import_module(f"{source}.{alias.name}").__doc__
    return None


def _own_doc(obj) -> str | None:
    if not inspect.isclass(obj):
        return getattr(obj, "__doc__", None)
    doc = obj.__dict__.get("__doc__")
    fields = getattr(obj, "_fields", None)
    if fields is not None:
        listed = repr(tuple(fields)).replace("'", "")[1:-1]  # as collections.namedtuple
        if doc in (f"{obj.__name__}({listed})", f"{obj.__name__}({', '.join(fields)})"):
            return None  # the generated docstring does not count
    return doc


def docstring(namespace: str, name: str) -> str | None:
    """The docstring of ``namespace.name`` (None when it has none of its own)."""
    obj = getattr(importlib.import_module(namespace), name)
    if inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isroutine(obj):
        doc = _own_doc(obj)
    else:
        doc = attribute_doc(namespace, name)
    return doc.strip() if doc and doc.strip() else None


def missing_docs(namespaces=None) -> list[str]:
    """``namespace.name`` of every public name without a docstring of its own."""
    spaces = [n for n, _ in NAMESPACES] if namespaces is None else namespaces
    return [
        f"{space}.{name}"
        for space in spaces
        for name in public_names(space)
        if docstring(space, name) is None
    ]


def page_path(namespace: str) -> str:
    """Where a namespace's page lives under ``docs/``."""
    return f"api/{namespace.replace('.', '_')}.md" if namespace != "hippox" else "api/hippox.md"


def api_page(namespace: str) -> str:
    """The Markdown of a namespace's API page: one mkdocstrings block per public name."""
    module = importlib.import_module(namespace)
    summary = inspect.cleandoc(module.__doc__ or "").split("\n\n")[0]
    parts = [
        f"# `{namespace}`\n",
        f"{summary}\n",
        "Generated from the docstrings of `__all__` (every public name).\n",
    ]
    for name in public_names(namespace):
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            parts.append(
                f"## `{name}`\n\nThe [`{obj.__name__}`]({page_path(obj.__name__)[4:]}) namespace.\n"
            )
            continue
        parts.append(f"::: {namespace}.{name}\n")
    return "\n".join(parts)
