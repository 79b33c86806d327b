"""The README's shell blocks, as a reader runs them: `tests/e2e/test_readme.py` runs the whole walkthrough,
`make newcomer` (bench/newcomer.py) times it up to the first tool list (issue 15).

The walkthrough is every ```sh block in order, except the `make …` blocks (starting mcpd, the suite,
lint, benchmarks: not steps of the walkthrough) and the blocks whose first line starts with
`# needs ` (Node, outside access: more than `make run` installs). Blocks name mcpd as
127.0.0.1:3000, `make run`'s default; a run on another port rewrites that. Standard library only:
the newcomer measurement runs this before anything is installed.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MCPD_ADDRESS = "127.0.0.1:3000"
NEEDS = "# needs "
_FENCE = re.compile(r"^```sh\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def sh_blocks(markdown: str) -> list[str]:
    """Every ```sh block of a Markdown text, in order."""
    return [match.group(1) for match in _FENCE.finditer(markdown)]


def commands(block: str) -> list[str]:
    """The block's commands, one per entry: continuation lines joined, blank and comment lines left out."""
    lines = block.replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def is_make(block: str) -> bool:
    """A block of `make …` commands only, such as the README's first (`make run`, `make test`)."""
    found = commands(block)
    return bool(found) and all(command.startswith("make ") for command in found)


def needs_more(block: str) -> bool:
    """Marked as needing more than `make run` installs (Node, outside access): shown, not run."""
    return block.startswith(NEEDS)


def walkthrough(markdown: str) -> list[str]:
    """The blocks a reader runs in a second shell after `make run`, in order."""
    return [block for block in sh_blocks(markdown) if not is_make(block) and not needs_more(block)]


def at_port(text: str, port: int) -> str:
    """The text with `make run`'s default mcpd address replaced by 127.0.0.1:PORT."""
    return text.replace(MCPD_ADDRESS, f"127.0.0.1:{port}")
