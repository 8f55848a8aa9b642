"""MkDocs hooks: generate the API pages from ``__all__``; refuse undocumented public names.

Every public namespace of `api_pages.NAMESPACES` gets a page ``api/<namespace>.md``
with one mkdocstrings block per name of its ``__all__``, so a new public name is
documented without touching the docs. The build stops (``PluginError``) when a public
name has no docstring of its own.
"""

from __future__ import annotations

import importlib.util
import pathlib

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

_spec = importlib.util.spec_from_file_location(
    "_hippox_api_pages", pathlib.Path(__file__).with_name("api_pages.py")
)
api_pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api_pages)


def on_files(files, config):
    missing = api_pages.missing_docs()
    if missing:
        raise PluginError(
            "public names without a docstring (document them, or drop them from __all__): "
            + ", ".join(missing)
        )
    for namespace, _ in api_pages.NAMESPACES:
        files.append(
            File.generated(
                config, api_pages.page_path(namespace), content=api_pages.api_page(namespace)
            )
        )
    return files
