"""The README's quickstart runs as written, and its API table lists every public name."""

import pathlib
import re

import hippox

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_quickstart_runs():
    blocks = _python_blocks(README.read_text())
    assert blocks, "README has no python code block"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


def test_api_table_lists_every_public_name():
    text = README.read_text()
    missing = [
        name
        for name in hippox.__all__
        if f"`{name}`" not in text and f"`hippox.{name}`" not in text
    ]
    assert not missing, f"public names missing from the README API table: {missing}"
