"""The docs site's sources: every public name documented, every page reachable.

``docs/api_pages.py`` is what the site's build hook (``docs/hooks.py``) uses to
generate the API pages from ``__all__`` and to refuse an undocumented public name;
here the same check runs without MkDocs, and the detection itself is checked on a
module written for the purpose. The navigation of ``mkdocs.yml`` must list every page
(and only existing ones), the README sections the pages include must be marked, and
the PyTorch migration guide must cover the options the issue names, with the hippox
arguments it cites existing in the layers' signatures. (The strict MkDocs build
itself runs in CI: ``.ci/run``.)
"""

import importlib
import importlib.util
import inspect
import pathlib
import re
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load_api_pages():
    spec = importlib.util.spec_from_file_location("_docs_api_pages", DOCS / "api_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


api = _load_api_pages()


def _available(needs):
    return needs is None or importlib.util.find_spec(needs) is not None


@pytest.mark.parametrize("namespace,needs", api.NAMESPACES, ids=[n for n, _ in api.NAMESPACES])
def test_every_public_name_has_a_docstring(namespace, needs):
    if not _available(needs):
        pytest.skip(f"{namespace} needs {needs}")
    names = api.public_names(namespace)
    assert names, namespace
    missing = api.missing_docs([namespace])
    assert not missing, f"public names without a docstring of their own: {missing}"


def test_docstring_detection_on_a_written_module(tmp_path, monkeypatch):
    (tmp_path / "_docprobe").mkdir()
    (tmp_path / "_docprobe" / "_impl.py").write_text(
        textwrap.dedent(
            '''
            from typing import NamedTuple

            #: Documented by a comment
            #: on two lines.
            COMMENTED = 1
            LITERAL = (1, 2)
            """Documented by a string literal."""
            BARE = 3.0


            class Plain(NamedTuple):
                a: int


            class Told(NamedTuple):
                """A NamedTuple with its own docstring."""

                a: int


            def f():
                """A function."""


            def g():
                pass
            '''
        )
    )
    (tmp_path / "_docprobe" / "__init__.py").write_text(
        "from _docprobe._impl import COMMENTED as COMMENTED\n"
        "from _docprobe._impl import LITERAL, BARE, Plain, Told, f, g\n"
        "__all__ = ['BARE', 'COMMENTED', 'LITERAL', 'Plain', 'Told', 'f', 'g']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert api.docstring("_docprobe", "COMMENTED") == "Documented by a comment on two lines."
        assert api.docstring("_docprobe", "LITERAL") == "Documented by a string literal."
        assert api.docstring("_docprobe", "Told") == "A NamedTuple with its own docstring."
        assert api.docstring("_docprobe", "f") == "A function."
        assert api.missing_docs(["_docprobe"]) == [
            "_docprobe.BARE",  # a float: its type's docstring does not count
            "_docprobe.Plain",  # the generated "Plain(a)" does not count
            "_docprobe.g",
        ]
        page = api.api_page("_docprobe")
        assert "::: _docprobe.COMMENTED" in page and "::: _docprobe.g" in page
    finally:
        for name in [m for m in sys.modules if m.startswith("_docprobe")]:
            del sys.modules[name]


def _nav_targets(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _nav_targets(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from _nav_targets(value)


def test_nav_lists_every_page_and_only_existing_ones():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = set(_nav_targets(config["nav"]))
    generated = {api.page_path(n) for n, _ in api.NAMESPACES}
    pages = {
        p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "notebooks" not in p.parts
    }
    notebooks = {f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert nav == pages | generated | notebooks
    assert len(notebooks) >= 5 and {"migration/pytorch.md", "migration/hippox-0.0.x.md"} <= nav


def test_included_readme_sections_are_marked():
    readme = (ROOT / "README.md").read_text()
    included = set()
    for page in DOCS.rglob("*.md"):
        included |= set(re.findall(r'--8<-- "README\.md:(\w+)"', page.read_text()))
    assert {"conventions", "glossary", "quickstart"} <= included
    for name in included:
        start, end = f"--8<-- [start:{name}]", f"--8<-- [end:{name}]"
        assert start in readme and end in readme, name
        assert readme.index(start) < readme.index(end), name
    for page in DOCS.rglob("*.md"):
        for path in re.findall(r'--8<-- "([^":]+)"', page.read_text()):
            assert (ROOT / path).is_file(), (page.name, path)


def test_pytorch_guide_covers_the_reference_options():
    text = (DOCS / "migration" / "pytorch.md").read_text()
    for option in (
        "init=",
        "mode=",
        "disc=",
        "dt_min",
        "dt_max",
        "lr=",
        "n_ssm",
        "channels",
        "bidirectional",
        "transposed",
        "C̃",
        "conj",
    ):
        assert option in text, option


def test_pytorch_guide_cites_real_hippox_arguments():
    import dataclasses

    import hippox

    s4 = {f.name for f in dataclasses.fields(hippox.S4Config)}
    s4d = {f.name for f in dataclasses.fields(hippox.S4DConfig)}
    cited = {
        "ssm_init",
        "l_max",
        "rank",
        "n_ssm",
        "conj_sym",
        "dt_min",
        "dt_max",
        "dt_transform",
        "dt_tie",
        "deterministic",
        "bandlimit",
        "channels",
        "bidirectional",
        "lambda_transform",
        "b_init",
    }
    assert cited <= s4, cited - s4
    assert {"disc"} | (cited - {"l_max", "rank"}) <= s4d
    text = (DOCS / "migration" / "pytorch.md").read_text()
    for name in cited | {"disc"}:
        assert f"`{name}" in text, name
    nnx = pytest.importorskip("hippox.nnx")  # needs flax
    from hippox._src.optim import ssm_optimizer

    seq = inspect.signature(nnx.SequenceModel.__init__).parameters
    assert {"activation", "dropout"} <= set(seq)
    opt = inspect.signature(ssm_optimizer).parameters
    assert {"ssm_learning_rate", "tensor_learning_rates"} <= set(opt)
