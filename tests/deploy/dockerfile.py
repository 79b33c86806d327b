"""Just enough of a Dockerfile reader for the tests: instructions with their continuation lines joined."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, COPY, ENV, ...
    text: str  # everything after the keyword, continuations joined

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction (CMD ["mcpd"]), None for the shell form."""
        start = self.text.find("[")
        if start == -1:
            return None
        value = json.loads(self.text[start:])
        assert isinstance(value, list)
        return [str(part) for part in value]


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    found: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, rest = whole.partition(" ")
        found.append(Instruction(keyword.upper(), rest.strip()))
    return found


def stages(path: Path = DOCKERFILE) -> list[list[Instruction]]:
    """The instructions of each stage, in order (each list starts with its FROM)."""
    result: list[list[Instruction]] = []
    for instruction in instructions(path):
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def env(stage: list[Instruction]) -> dict[str, str]:
    """The ENV of a stage (KEY=VALUE pairs; values in this Dockerfile have no spaces)."""
    values: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for pair in instruction.text.split():
                key, _, value = pair.partition("=")
                values[key] = value
    return values
