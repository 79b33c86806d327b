"""Kubernetes label selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from mcpctl.core.errors import InvalidError

Matcher = Callable[[Mapping[str, str]], bool]

_TERM_RE = re.compile(
    r"""^\s*(?:
        (?P<not>!)\s*(?P<nkey>[^\s=!(),]+)
      | (?P<skey>[^\s=!(),]+)\s+(?P<setop>in|notin)\s*\((?P<values>[^()]*)\)
      | (?P<key>[^\s=!(),]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^\s=!(),]*))?
    )\s*$""",
    re.VERBOSE,
)


def _split_terms(text: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return terms


def parse_selector(text: str) -> Matcher:
    """Compile a selector into a predicate on a label map; InvalidError on bad syntax."""
    if not text.strip():
        return lambda labels: True
    checks: list[Matcher] = []
    for term in _split_terms(text):
        match = _TERM_RE.match(term)
        if not match:
            raise InvalidError(f"invalid label selector term {term.strip()!r}", details={"selector": text})
        checks.append(_term_matcher(match))
    return lambda labels: all(check(labels) for check in checks)


def _term_matcher(m: re.Match[str]) -> Matcher:
    if m.group("not"):
        key = m.group("nkey")
        return lambda labels: key not in labels
    if m.group("setop"):
        key, values = m.group("skey"), {v.strip() for v in m.group("values").split(",") if v.strip()}
        if m.group("setop") == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    key, op, value = m.group("key"), m.group("op"), m.group("value")
    if op is None:
        return lambda labels: key in labels
    if op == "!=":
        return lambda labels: labels.get(key) != value
    return lambda labels: labels.get(key) == value
