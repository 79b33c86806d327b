"""mcpd's end of cross-replica invalidation (DESIGN §11; the bus is `mcplocal/invalidation.py`).

With `MCPD_REDIS_URL` (or `MCPLOCAL_REDIS_URL`) set, every mcpd replica publishes the revocations and
configuration changes it makes (`Gateway.tokens_ended`, `Gateway.configuration_changed`) and applies
the other replicas' through the same code paths, without publishing them again: its embedded
endpoint's token gate and views, its data-plane links' held tokens (so linked mcplocals hear `ended`
and `changed`), and the per-server proxy's sessions of an ended token. After a Redis outage it drops
every cached introspection and view once. Metrics: `mcpctl_redis_connected`,
`mcpctl_invalidations_applied_total{kind}`, `mcpctl_invalidations_published_total`,
`mcpctl_invalidation_publish_failures_total`, `mcpctl_invalidations_dropped_total`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mcpctl.core import invalidation as wire
from mcpctl.mcpd.settings import Settings
from mcpctl.mcpd.state import AppState
from mcpctl.mcplocal.invalidation import BusSettings, InvalidationBus
from mcpctl.mcplocal.settings import GatewaySettings


def bus_settings(settings: Settings, gateway: GatewaySettings) -> BusSettings | None:
    """MCPD_REDIS_* win; the embedded endpoint's MCPLOCAL_REDIS_* otherwise; no URL, no bus."""
    url = settings.redis_url or gateway.redis_url
    if url is None:
        return None
    return BusSettings(
        url=url,
        channel_prefix=settings.redis_channel or gateway.redis_channel,
        stale_seconds=max(gateway.token_positive_ttl_ms / 1000, 1.0),
    )


def apply(state: AppState, message: wire.Invalidation) -> None:
    """Another replica's change, applied here as if it had been made here (not published again)."""
    gateway = state.gateway
    if isinstance(message, wire.TokensEnded):
        if gateway is not None:
            gateway.tokens_ended(message.tokens, publish=False)
        if state.proxy_sessions is not None:
            for sha in message.tokens:
                state.proxy_sessions.close_owned_by(f"token:{sha}")
        return
    if state.supervisor is not None:
        state.supervisor.poke()  # a server may have been added or changed: look at the database now
    if gateway is not None:
        gateway.configuration_changed(publish=False)


def catch_up(state: AppState) -> None:
    """Messages may have been missed while Redis was away: forget every cached introspection and view
    (the links' held tokens authenticate again, linked mcplocals drop theirs)."""
    if state.gateway is not None:
        state.gateway.configuration_changed(publish=False)


@contextlib.asynccontextmanager
async def running(
    state: AppState, gateway_settings: GatewaySettings
) -> AsyncIterator[InvalidationBus | None]:
    """The bus of this mcpd while the app runs (None without Redis), exported as metrics."""
    config = bus_settings(state.settings, gateway_settings)
    if config is None or state.gateway is None:
        yield None
        return
    bus = InvalidationBus(config, lambda message: apply(state, message), lambda: catch_up(state))
    collector = BusCollector(bus)
    state.metrics.registry.register(collector)
    state.gateway.bus = bus
    bus.start()
    try:
        yield bus
    finally:
        state.gateway.bus = None
        await bus.close()
        state.metrics.registry.unregister(collector)


class BusCollector(Collector):
    """The bus's state as Prometheus metrics, read at scrape time."""

    def __init__(self, bus: InvalidationBus):
        self.bus = bus

    def collect(self) -> Iterator[Metric]:
        counters = self.bus.counters
        yield GaugeMetricFamily(
            "mcpctl_redis_connected",
            "1 while the invalidation subscriber is subscribed to Redis, else 0.",
            value=1.0 if self.bus.connected else 0.0,
        )
        applied = CounterMetricFamily(
            "mcpctl_invalidations_applied",
            "Other replicas' invalidations applied here, by kind (catch-up: after a Redis outage).",
            labels=["kind"],
        )
        for kind in (wire.TOKENS_ENDED, wire.CHANGED, "catch-up"):
            applied.add_metric([kind], float(counters.applied.get(kind, 0)))
        yield applied
        for name, text, value in (
            ("mcpctl_invalidations_published", "Invalidations published to Redis.", counters.published),
            (
                "mcpctl_invalidation_publish_failures",
                "Attempts to publish an invalidation that failed (retried while useful).",
                counters.publish_failures,
            ),
            (
                "mcpctl_invalidations_dropped",
                "Invalidations given up (stale) or folded into one full change when the queue overflowed.",
                counters.dropped,
            ),
        ):
            yield CounterMetricFamily(name, text, value=float(value))
