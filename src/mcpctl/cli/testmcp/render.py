"""The report as text (for people), JSON (for scripts) or JUnit XML (for CI systems)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import click

from mcpctl.cli.testmcp.report import Report, StepResult

_COLOURS = {"PASS": "green", "FAIL": "red", "SKIP": "yellow"}
_NAME_WIDTH = max(len("expected-tools"), len("tools/list"))


def render(report: Report, output: str) -> str:
    if output == "json":
        return render_json(report)
    if output == "junit":
        return render_junit(report)
    return render_text(report)


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False)


def render_text(report: Report) -> str:
    """One line per step, warnings below it, a verdict last. Styled; click drops styles off a terminal."""
    lines = [report.url]
    for step in report.steps:
        duration = f"{step.duration_ms:.0f} ms" if step.status != "SKIP" else ""
        status = click.style(f"{step.status:<4}", fg=_COLOURS[step.status], bold=step.status == "FAIL")
        lines.append(f"{status}  {step.name:<{_NAME_WIDTH}}  {duration:>8}  {step.detail}".rstrip())
        lines.extend(click.style(f"      warning: {w}", fg="yellow") for w in step.warnings)
    lines.append(_verdict(report))
    return "\n".join(lines)


def _verdict(report: Report) -> str:
    counts = {s: sum(1 for step in report.steps if step.status == s) for s in ("PASS", "FAIL", "SKIP")}
    tally = f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped"
    took = f"in {report.duration_ms / 1000:.2f} s"
    if report.failure is None:
        return f"{click.style('PASS', fg='green', bold=True)}  {tally} {took}"
    failed = ", ".join(s.name for s in report.failed_steps())
    verdict = click.style("FAIL", fg="red", bold=True)
    return f"{verdict}  {report.failure} failure in {failed} (exit {report.exit_code}): {tally} {took}"


def render_junit(report: Report) -> str:
    """One <testsuite>, one <testcase> per step; contract failures are <failure>, transport and auth
    failures <error> (the endpoint could not be tested), skips <skipped>."""
    failures = sum(1 for s in report.steps if s.status == "FAIL" and s.failure == "contract")
    errors = sum(1 for s in report.steps if s.status == "FAIL" and s.failure != "contract")
    skipped = sum(1 for s in report.steps if s.status == "SKIP")
    counts = {
        "tests": str(len(report.steps)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": str(skipped),
        "time": f"{report.duration_ms / 1000:.3f}",
    }
    suites = ET.Element("testsuites", {"name": "mcpctl test mcp", **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": f"mcpctl test mcp {report.url}", **counts})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("url", report.url), ("protocolVersion", report.protocol_version or "")):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for step in report.steps:
        suite.append(_testcase(step, report.url))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")


def _testcase(step: StepResult, url: str) -> ET.Element:
    case = ET.Element("testcase", {"classname": "mcpctl.test.mcp", "name": step.name, "time": _seconds(step)})
    if step.status == "SKIP":
        ET.SubElement(case, "skipped", {"message": step.detail})
    elif step.status == "FAIL":
        tag = "failure" if step.failure == "contract" else "error"
        element = ET.SubElement(case, tag, {"type": step.failure or "", "message": step.detail})
        element.text = f"{step.name} failed ({step.failure}) against {url}: {step.detail}"
    out = [step.detail] if step.status == "PASS" else []
    out += [f"warning: {w}" for w in step.warnings]
    if out:
        ET.SubElement(case, "system-out").text = "\n".join(out)
    return case


def _seconds(step: StepResult) -> str:
    return f"{step.duration_ms / 1000:.3f}"
