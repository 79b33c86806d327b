"""What a conformance run found, per spec version and target, compared with the direct run at
scenario level and at check level (conformance/checks.py), minus the documented differences
(conformance/differences.yaml); as a table for people and as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.checks import LostCheck, lost_checks
from conformance.differences import Difference, documenting
from conformance.suites import Outcome, Suite

DIRECT = "direct"


@dataclass
class Report:
    suites: list[Suite]
    targets: list[str]  # DIRECT first: every other target is compared with it
    differences: tuple[Difference, ...] = ()
    results: dict[tuple[str, str], dict[str, Outcome]] = field(default_factory=dict)  # (spec, target) → …
    errors: list[str] = field(default_factory=list)

    @property
    def compared(self) -> list[str]:
        return [t for t in self.targets if t != DIRECT]

    def outcome(self, spec: str, target: str, scenario: str) -> Outcome | None:
        return self.results.get((spec, target), {}).get(scenario)

    def rows(self) -> list[tuple[str, str, dict[str, Outcome | None]]]:
        """(scenario, spec version, outcome per target) for every scenario any target ran."""
        rows = []
        for suite in self.suites:
            names: dict[str, None] = {}
            for target in self.targets:
                names.update(dict.fromkeys(self.results.get((suite.spec_version, target), {})))
            for name in names:
                outcomes = {t: self.outcome(suite.spec_version, t, name) for t in self.targets}
                rows.append((name, suite.spec_version, outcomes))
        return rows

    def all_lost_checks(self) -> list[LostCheck]:
        """Every check that passes directly and not through a target, documented or not."""
        lost: list[LostCheck] = []
        for suite in self.suites:
            direct = self.results.get((suite.spec_version, DIRECT), {})
            for target in self.compared:
                through = self.results.get((suite.spec_version, target), {})
                lost.extend(lost_checks(suite.spec_version, target, direct, through))
        return lost

    def lost_checks(self) -> list[LostCheck]:
        """The lost checks no documented difference explains: each fails the run."""
        return [c for c in self.all_lost_checks() if documenting(self.differences, c) is None]

    def documented_checks(self) -> list[tuple[LostCheck, Difference]]:
        out = []
        for check in self.all_lost_checks():
            difference = documenting(self.differences, check)
            if difference is not None:
                out.append((check, difference))
        return out

    def unused_differences(self) -> list[Difference]:
        """Entries for a spec version and target that ran, which no lost check needed (stale?)."""
        used = {id(d) for _, d in self.documented_checks()}
        ran = {key for key, outcomes in self.results.items() if outcomes}
        return [
            d
            for d in self.differences
            if id(d) not in used and any((d.spec_version, t) in ran for t in d.targets)
        ]

    def _scenario_documented(self, scenario: str, spec: str, target: str) -> bool:
        """A scenario lost only through documented differences: it ran, and each of its failed checks
        is documented for this target."""
        outcome = self.outcome(spec, target, scenario)
        failed = [c for c in outcome.results if c.status == "FAILURE"] if outcome is not None else []
        return bool(failed) and all(
            any(d.covers(spec, target, scenario, c.id) for d in self.differences) for c in failed
        )

    def lost(self, *, documented: bool = False) -> list[tuple[str, str, str]]:
        """(scenario, spec version, target): passes directly, does not pass through `target`; only
        those a documented difference explains when `documented`, else only those none explains."""
        lost: list[tuple[str, str, str]] = []
        for name, spec, outcomes in self.rows():
            direct = outcomes[DIRECT]
            if direct is None or not direct.passed:
                continue
            for target in self.compared:
                outcome = outcomes[target]
                if outcome is not None and outcome.passed:
                    continue
                if self._scenario_documented(name, spec, target) == documented:
                    lost.append((name, spec, target))
        return lost

    def direct_failed_to_run(self) -> bool:
        return any(not self.results.get((s.spec_version, DIRECT)) for s in self.suites)

    def exit_code(self) -> int:
        return 1 if self.direct_failed_to_run() or self.lost() or self.lost_checks() else 0

    def to_json(self) -> dict[str, object]:
        return {
            "suites": [
                {
                    "specVersion": s.spec_version,
                    "package": "@modelcontextprotocol/conformance",
                    "version": s.version(),
                }
                for s in self.suites
            ],
            "targets": self.targets,
            "scenarios": [
                {"scenario": name, "specVersion": spec}
                | {t: (o.to_json() if o is not None else None) for t, o in outcomes.items()}
                for name, spec, outcomes in self.rows()
            ],
            "lost": [{"scenario": n, "specVersion": s, "target": t} for n, s, t in self.lost()],
            "lostChecks": [c.to_json() for c in self.lost_checks()],
            "documented": {
                "scenarios": [
                    {"scenario": n, "specVersion": s, "target": t} for n, s, t in self.lost(documented=True)
                ],
                "checks": [c.to_json() | {"reason": d.reason} for c, d in self.documented_checks()],
                "unused": [d.to_json() for d in self.unused_differences()],
            },
            "errors": self.errors,
            "exitCode": self.exit_code(),
        }


def _cell(outcome: Outcome | None) -> str:
    return "-" if outcome is None else ("pass" if outcome.passed else "FAIL")


def render(report: Report) -> str:
    """The scenario table, a summary per spec version and target, then every lost scenario and check
    (grouped by target and spec version), the documented ones counted, and the verdict."""
    rows = report.rows()
    width = max([len("SCENARIO"), *(len(name) for name, _, _ in rows)])
    widths = {t: max(len(t), 4) for t in report.targets}
    header = f"{'SCENARIO':<{width}}  {'VERSION':<10}  " + "  ".join(
        f"{t.upper():<{widths[t]}}" for t in report.targets
    )
    lines = [header.rstrip()]
    for name, spec, outcomes in rows:
        cells = "  ".join(f"{_cell(outcomes[t]):<{widths[t]}}" for t in report.targets)
        lines.append(f"{name:<{width}}  {spec:<10}  {cells}".rstrip())
    lines.append("")
    lost_checks = report.lost_checks()
    documented = report.documented_checks()
    for suite in report.suites:
        spec = suite.spec_version
        lines.append(f"{spec} (@modelcontextprotocol/conformance {suite.version()}):")
        for target in report.targets:
            ran = report.results.get((spec, target), {})
            line = f"  {target:<14} {sum(o.passed for o in ran.values())}/{len(ran)} scenarios passed"
            if target != DIRECT:
                lost = sum(c.spec_version == spec and c.target == target for c in lost_checks)
                known = sum(c.spec_version == spec and c.target == target for c, _ in documented)
                line += f", {lost} check(s) lost, {known} documented difference(s)"
            lines.append(line)
    for name, spec, target in report.lost():
        outcome = report.outcome(spec, target, name)
        why = "no result" if outcome is None else (outcome.failures[0] if outcome.failures else "failed")
        lines.append(f"LOST scenario through {target}: {name} ({spec}): {why[:200]}")
    for check in lost_checks:
        was = f"{check.direct} -> {check.status or 'missing'}"
        where = f"{check.target} ({check.spec_version})"
        lines.append(f"LOST check through {where}: {check.label} [{was}]: {check.message[:200]}")
    for difference in report.unused_differences():
        lines.append(
            f"note: documented difference not seen: {difference.scenario}/{difference.check} "
            f"({difference.spec_version}, {', '.join(difference.targets)})"
        )
    lines.extend(f"error: {error}" for error in report.errors)
    if report.direct_failed_to_run():
        lines.append("FAILED: the direct run did not run every suite")
    elif report.lost() or lost_checks:
        lines.append(
            f"FAILED: {len(report.lost())} scenario run(s) and {len(lost_checks)} check(s) pass directly "
            f"but not through {'/'.join(report.compared)}"
        )
    else:
        lines.append("OK: nothing that passes directly is lost, apart from the documented differences")
    return "\n".join(lines)
