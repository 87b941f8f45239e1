"""The annotated example configuration, shipped inside the package (``libmirror example-config``).

``daemon/config.example.toml`` is the text; the repository's top-level ``config.example.toml`` is a
byte-identical copy for readers of the source tree (``tests/cli/test_cli_habits.py`` keeps them equal).
"""

from __future__ import annotations

from importlib.resources import files

EXAMPLE_FILE = "config.example.toml"


def example_text() -> str:
    """The example configuration exactly as shipped (every key documented, safe defaults)."""
    return files("daemon").joinpath(EXAMPLE_FILE).read_text(encoding="utf-8")
