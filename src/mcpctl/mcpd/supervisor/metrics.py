"""Prometheus view of the supervisor: instances by state, restarts, health (read at scrape time)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mcpctl.mcpd.supervisor.supervisor import Supervisor


class InstanceCollector(Collector):
    def __init__(self, supervisor: Supervisor):
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        replicas = self.supervisor.instances()
        by_state = GaugeMetricFamily(
            "mcpd_instances", "Instances by server and status.", labels=["server", "status"]
        )
        for (server, status), count in sorted(Counter((r.config.name, r.status) for r in replicas).items()):
            by_state.add_metric([server, status], count)
        restarts = CounterMetricFamily(
            "mcpd_instance_restarts",
            "Restarts of each instance since mcpd started.",
            labels=["server", "instance"],
        )
        healthy = GaugeMetricFamily(
            "mcpd_instance_healthy",
            "1 when the instance's last health probe passed, else 0.",
            labels=["server", "instance"],
        )
        inflight = GaugeMetricFamily(
            "mcpd_instance_inflight_requests",
            "Requests in flight per instance.",
            labels=["server", "instance"],
        )
        for replica in replicas:
            labels = [replica.config.name, replica.name]
            restarts.add_metric(labels, replica.restarts)
            healthy.add_metric(labels, 1 if replica.health == "healthy" else 0)
            inflight.add_metric(labels, replica.inflight)
        yield from (by_state, restarts, healthy, inflight)
