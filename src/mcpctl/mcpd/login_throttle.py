"""Failed logins throttled per client address and per account (DESIGN §12).

Every attempt is charged against both its address and its account before any password work, so
parallel attempts count at once; a successful login takes its charges back (and clears the
account's). Accounts are keyed by the normalised e-mail whether or not such a user exists, so the
answer never tells which accounts exist. IPv6 addresses count per /64, the block one host usually
gets. Proxy headers are not trusted: the address is the socket's peer, as in the audit log.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mcpctl.core.errors import TooManyRequestsError
from mcpctl.core.throttle import FailureThrottle, charge_all


@dataclass(frozen=True)
class Attempt:
    """The keys one login attempt was charged to."""

    address: str
    account: str


class LoginThrottle:
    """Two failure throttles: per client address and per account."""

    def __init__(self, *, per_address: int, per_account: int, window_seconds: float, max_keys: int):
        self.addresses = FailureThrottle(
            "login_address", burst=per_address, window_seconds=window_seconds, max_keys=max_keys
        )
        self.accounts = FailureThrottle(
            "login_account", burst=per_account, window_seconds=window_seconds, max_keys=max_keys
        )

    def admit(self, client_host: str | None, email: str) -> Attempt:
        """Charge one attempt, or raise TooManyRequestsError (429 with Retry-After) without charging."""
        attempt = Attempt(address_key(client_host), email.strip().lower())
        refusal = charge_all([(self.addresses, attempt.address), (self.accounts, attempt.account)])
        if refusal is not None:
            raise TooManyRequestsError(
                "too many failed logins; try again later",
                retry_after=refusal.retry_after,
                details={"limit": refusal.name},
            )
        return attempt

    def succeeded(self, attempt: Attempt) -> None:
        """The credentials were right: the attempt was no failure, and the account starts afresh."""
        self.addresses.refund(attempt.address)
        self.accounts.clear(attempt.account)


def address_key(host: str | None) -> str:
    """The throttling key of a peer address: IPv4 as is, IPv6 by its /64 (IPv4-mapped as IPv4)."""
    if not host:
        return "-"
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)
