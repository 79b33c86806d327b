"""Resource name rules (DESIGN §2): DNS labels, label maps, e-mail addresses."""

from __future__ import annotations

import re

from mcpctl.core.errors import InvalidError

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Kubernetes-style label keys/values: keys optional "prefix/" + name; values may be empty.
_LABEL_NAME = r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
LABEL_KEY_RE = re.compile(rf"^([a-z0-9]([a-z0-9.-]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
LABEL_VALUE_RE = re.compile(rf"^({_LABEL_NAME})?$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


def check_name(name: str, *, what: str = "name") -> str:
    """Return `name` if it is a DNS label, else raise InvalidError naming the rule."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidError(
            f"invalid {what} {name!r}: must be a DNS label (lowercase letters, digits and '-', "
            "1-63 characters, starting and ending with a letter or digit)",
            details={"field": what},
        )
    return name


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    """Validate a label map (Kubernetes label syntax)."""
    for key, value in labels.items():
        if not LABEL_KEY_RE.fullmatch(key):
            raise InvalidError(f"invalid label key {key!r}", details={"field": "labels"})
        if not isinstance(value, str) or not LABEL_VALUE_RE.fullmatch(value):
            raise InvalidError(f"invalid value {value!r} for label {key!r}", details={"field": "labels"})
    return labels


def check_email(email: str) -> str:
    """Validate an e-mail address loosely (one '@', no spaces) and return it lower-cased."""
    if not isinstance(email, str) or not EMAIL_RE.fullmatch(email):
        raise InvalidError(f"invalid email {email!r}", details={"field": "email"})
    return email.lower()
