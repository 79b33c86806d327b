"""The conformance harness's verdicts (conformance/checks.py, differences.py, report.py) and the auth
proxy's choice of token, on hand-made checks.json data: what counts as a lost check, how repeated
checks are paired, what a documented difference covers, and that the README lists every one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conformance.authproxy import AuthProxy
from conformance.checks import lost_checks
from conformance.differences import DIFFERENCES_FILE, DifferencesError, load
from conformance.report import Report
from conformance.run import GATEWAY_TARGETS, TARGETS
from conformance.suites import SUITES, Check, Outcome

README = Path(__file__).resolve().parents[2] / "conformance" / "README.md"
SPECS = [s.spec_version for s in SUITES]
SPEC = "2026-07-28"


def outcome(*checks: tuple[str, str]) -> Outcome:
    results = tuple(Check(id, status, f"{id} said {status}") for id, status in checks)
    failures = tuple(c.id for c in results if c.status == "FAILURE")
    return Outcome(passed=not failures, checks=len(results), failures=failures, results=results)


def test_a_check_is_lost_when_it_gets_worse_or_is_missing_and_info_is_not_compared() -> None:
    direct = {
        "s": outcome(("ok", "SUCCESS"), ("warned", "WARNING"), ("note", "INFO"), ("gone", "SUCCESS")),
        "absent": outcome(("only", "SUCCESS")),
    }
    through = {"s": outcome(("ok", "WARNING"), ("warned", "WARNING"), ("note", "FAILURE"))}
    lost = {(c.scenario, c.check): c for c in lost_checks(SPEC, "serve-http", direct, through)}
    assert set(lost) == {("s", "ok"), ("s", "gone"), ("absent", "only")}
    assert (lost["s", "ok"].direct, lost["s", "ok"].status) == ("SUCCESS", "WARNING")
    assert lost["s", "ok"].message == "ok said WARNING"
    assert lost["s", "gone"].status is None
    assert lost["s", "gone"].message == "the check did not run (the scenario failed: note)"
    assert lost["absent", "only"].message == "no result for the scenario"


def test_a_warning_may_stay_a_warning_but_not_become_a_failure() -> None:
    direct = {"s": outcome(("w", "WARNING"))}
    assert lost_checks(SPEC, "t", direct, {"s": outcome(("w", "SUCCESS"))}) == []
    assert [c.status for c in lost_checks(SPEC, "t", direct, {"s": outcome(("w", "FAILURE"))})] == ["FAILURE"]


def test_repeated_checks_are_paired_by_occurrence() -> None:
    direct = {"s": outcome(("400", "SUCCESS"), ("400", "SUCCESS"), ("400", "SUCCESS"))}
    through = {"s": outcome(("400", "SUCCESS"), ("400", "FAILURE"))}
    lost = lost_checks(SPEC, "t", direct, through)
    assert [(c.occurrence, c.status) for c in lost] == [(2, "FAILURE"), (3, None)]
    assert [c.label for c in lost] == ["s/400#2", "s/400#3"]


def _report(direct: Outcome, through: Outcome, differences_yaml: str, tmp_path: Path) -> Report:
    path = tmp_path / "differences.yaml"
    path.write_text(differences_yaml)
    suite = next(s for s in SUITES if s.spec_version == SPEC)
    report = Report([suite], ["direct", "serve-http"], load(path, SPECS, GATEWAY_TARGETS))
    report.results[(SPEC, "direct")] = {"s": direct}
    report.results[(SPEC, "serve-http")] = {"s": through}
    return report


ENTRY = """
- scenario: s
  check: c
  specVersion: "2026-07-28"
  targets: [serve-http]
  reason: the gateway is right
"""


def test_a_documented_difference_does_not_fail_the_run_and_an_undocumented_one_does(tmp_path: Path) -> None:
    direct = outcome(("c", "SUCCESS"), ("d", "SUCCESS"))
    documented = _report(direct, outcome(("c", "FAILURE"), ("d", "SUCCESS")), ENTRY, tmp_path)
    assert documented.lost_checks() == [] and documented.lost() == []
    assert documented.lost(documented=True) == [("s", SPEC, "serve-http")]
    assert [d.reason for _, d in documented.documented_checks()] == ["the gateway is right"]
    assert documented.exit_code() == 0

    other = _report(direct, outcome(("c", "SUCCESS"), ("d", "FAILURE")), ENTRY, tmp_path)
    assert [c.check for c in other.lost_checks()] == ["d"] and other.lost() == [("s", SPEC, "serve-http")]
    assert [d.check for d in other.unused_differences()] == ["c"]
    assert other.exit_code() == 1


def test_a_difference_covers_only_its_targets_and_spec_version(tmp_path: Path) -> None:
    entry = ENTRY.replace("[serve-http]", "[embedded-http]")
    report = _report(outcome(("c", "SUCCESS")), outcome(("c", "FAILURE")), entry, tmp_path)
    assert [c.check for c in report.lost_checks()] == ["c"] and report.exit_code() == 1


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("{}", "a list of entries"),
        ("- {scenario: s, check: c, specVersion: '2026-07-28', targets: [serve-http]}", "exactly the fields"),
        (ENTRY.replace("2026-07-28", "2099-01-01"), "unknown specVersion"),
        (ENTRY.replace("[serve-http]", "[direct]"), "targets must be"),
        (ENTRY.replace("[serve-http]", "[]"), "targets must be"),
        (ENTRY.replace("the gateway is right", "''"), "reason must be"),
    ],
)
def test_a_malformed_differences_file_is_refused_naming_the_problem(
    text: str, complaint: str, tmp_path: Path
) -> None:
    path = tmp_path / "differences.yaml"
    path.write_text(text)
    with pytest.raises(DifferencesError, match=complaint):
        load(path, SPECS, GATEWAY_TARGETS)


def test_the_readme_lists_every_documented_difference() -> None:
    rows = [
        [cell.strip(" `") for cell in line.strip().strip("|").split("|")]
        for line in README.read_text().splitlines()
        if line.startswith("|")
    ]
    listed = {(row[0], row[1], row[2]) for row in rows if len(row) >= 5}
    differences = load(DIFFERENCES_FILE, SPECS, GATEWAY_TARGETS)
    assert differences, "differences.yaml is empty or unreadable"
    for difference in differences:
        key = (difference.scenario, difference.check, difference.spec_version)
        assert key in listed, f"conformance/README.md has no row for {key}"


def test_the_readme_names_every_target() -> None:
    text = README.read_text()
    for target in TARGETS:
        assert re.search(rf"\*\*{re.escape(target)}\*\*", text), target


def test_the_auth_proxy_adds_the_token_of_the_project_in_the_path() -> None:
    proxy = AuthProxy("http://127.0.0.1:1", None, "127.0.0.1:2", {"a": "tok-a", "b": "tok-b"})

    def authorization(path: bytes) -> bytes | None:
        return dict(proxy.request_headers([(b"host", b"127.0.0.1:2")], path)).get(b"authorization")

    assert authorization(b"/projects/a/mcp") == b"Bearer tok-a"
    assert authorization(b"/projects/b/mcp") == b"Bearer tok-b"
    assert authorization(b"/projects/ab/mcp") is None
    fallback = AuthProxy("http://127.0.0.1:1", "tok", "127.0.0.1:2", {"a": "tok-a"})
    assert dict(fallback.request_headers([], b"/mcp"))[b"authorization"] == b"Bearer tok"
