"""The failure throttle: leaky buckets per key in a bounded table (DESIGN §12)."""

from __future__ import annotations

import pytest

from mcpctl.core.throttle import FailureThrottle, charge_all
from mcpctl.mcpd.login_throttle import address_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, burst: int = 3, window: float = 30.0, max_keys: int = 100) -> FailureThrottle:
    return FailureThrottle("t", burst=burst, window_seconds=window, max_keys=max_keys, clock=clock)


def test_a_key_is_refused_after_its_burst_with_the_seconds_until_one_more_fits() -> None:
    clock = Clock()
    limit = throttle(clock)  # 3 per 30 s: one more every 10 s
    for _ in range(3):
        assert limit.refusal("k") is None
        limit.charge("k")
    refusal = limit.refusal("k")
    assert refusal is not None and refusal.name == "t" and refusal.retry_after == pytest.approx(10.0)
    clock.now += 4
    refusal = limit.refusal("k")
    assert refusal is not None and refusal.retry_after == pytest.approx(6.0)
    clock.now += 6
    assert limit.refusal("k") is None
    assert limit.refusal("other") is None


def test_a_refund_gives_one_attempt_back_and_clear_forgets_the_key() -> None:
    limit = throttle(Clock())
    for _ in range(3):
        limit.charge("k")
    limit.refund("k")
    assert limit.refusal("k") is None
    limit.charge("k")
    limit.clear("k")
    assert limit.refusal("k") is None and len(limit) == 0


def test_a_flood_of_distinct_keys_keeps_the_table_bounded_and_drops_the_least_recent_first() -> None:
    limit = throttle(Clock(), burst=1, max_keys=100)
    limit.charge("kept")
    for n in range(10_000):
        limit.charge(f"random-{n}")
        if n % 50 == 0:
            limit.charge("kept")  # recently charged keys survive the flood
    assert len(limit) == 100
    assert limit.refusal("kept") is not None
    assert limit.refusal("random-0") is None


def test_charge_all_charges_every_key_or_none() -> None:
    clock = Clock()
    addresses, accounts = throttle(clock, burst=5), throttle(clock, burst=1)
    assert charge_all([(addresses, "a"), (accounts, "x")]) is None
    refusal = charge_all([(addresses, "a"), (accounts, "x")])
    assert refusal is not None
    assert charge_all([(addresses, "a"), (accounts, "y")]) is None
    for _ in range(3):
        charge_all([(addresses, "a"), (accounts, f"z{_}")])
    assert addresses.refusal("a") is not None  # 5 charged: 3 + the 2 accepted above, none refused


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        (None, "-"),
        ("testclient", "testclient"),
    ],
)
def test_addresses_are_keyed_as_one_host_usually_holds_them(host: str | None, key: str) -> None:
    assert address_key(host) == key


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        FailureThrottle("t", burst=0, window_seconds=1, max_keys=1)
