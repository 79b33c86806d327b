"""The documented differences (conformance/differences.yaml): checks that pass against the fixture
directly and, correctly, not through the gateway. Each names its scenario, check id, spec version,
the targets it applies to and why the gateway's answer is the right one. A lost check that no entry
names fails the run; an entry the run did not need is reported as unused (it may be stale)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from conformance.checks import LostCheck

DIFFERENCES_FILE = Path(__file__).with_name("differences.yaml")
FIELDS = ("scenario", "check", "specVersion", "targets", "reason")


class DifferencesError(Exception):
    """differences.yaml is malformed; the message names the entry and what is wrong."""


@dataclass(frozen=True)
class Difference:
    scenario: str
    check: str
    spec_version: str
    targets: tuple[str, ...]
    reason: str

    def covers(self, spec_version: str, target: str, scenario: str, check: str) -> bool:
        return (self.spec_version, self.scenario, self.check) == (spec_version, scenario, check) and (
            target in self.targets
        )

    def to_json(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "check": self.check,
            "specVersion": self.spec_version,
            "targets": list(self.targets),
            "reason": self.reason,
        }


def load(path: Path, spec_versions: Sequence[str], targets: Sequence[str]) -> tuple[Difference, ...]:
    """Every entry of `path`, checked: all fields present, known spec versions and targets."""
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DifferencesError(f"{path}: {exc}") from exc
    if not isinstance(raw, list):
        raise DifferencesError(f"{path}: expected a list of entries, got {type(raw).__name__}")
    return tuple(_entry(path, n, item, spec_versions, targets) for n, item in enumerate(raw, 1))


def _entry(path: Path, n: int, item: Any, spec_versions: Sequence[str], targets: Sequence[str]) -> Difference:
    where = f"{path}: entry {n}"
    if not isinstance(item, dict) or set(item) != set(FIELDS):
        keys = sorted(item) if isinstance(item, dict) else type(item).__name__
        raise DifferencesError(f"{where}: needs exactly the fields {', '.join(FIELDS)}; has {keys}")
    for name in ("scenario", "check", "specVersion", "reason"):
        if not isinstance(item[name], str) or not item[name].strip():
            raise DifferencesError(f"{where}: {name} must be a non-empty string")
    if item["specVersion"] not in spec_versions:
        raise DifferencesError(
            f"{where}: unknown specVersion {item['specVersion']!r} ({', '.join(spec_versions)})"
        )
    listed = item["targets"]
    if not isinstance(listed, list) or not listed or not all(t in targets for t in listed):
        raise DifferencesError(
            f"{where}: targets must be a non-empty list of {', '.join(targets)}; got {listed!r}"
        )
    return Difference(
        item["scenario"], item["check"], item["specVersion"], tuple(listed), " ".join(item["reason"].split())
    )


def documenting(differences: Iterable[Difference], lost: LostCheck) -> Difference | None:
    """The entry that documents `lost`, if any."""
    for difference in differences:
        if difference.covers(lost.spec_version, lost.target, lost.scenario, lost.check):
            return difference
    return None
