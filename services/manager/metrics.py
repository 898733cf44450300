"""The manager's own Prometheus metrics (the control plane), and the HTTP endpoint that serves them.

Pipelines' metrics are not here: they live in Redis (each task's stored report) and the API renders
them. What only the manager sees is here: how long each command took, which failed and why, how
many requests are being answered and how many clients are connected, how long the reaper's
sweeps take, and whether this manager holds the reaper lease (several managers share one Redis).
Label values come from the parsed request's type (a closed set, ``invalid`` when it did not parse)
and the wire error types: never from a client's free text, so the series stay few
and carry no credentials.

Each ``ManagerMetrics`` has its own registry (several managers run in one test process); it is
served only when ``MANAGER_METRICS_PORT`` is set, bound to ``MANAGER_METRICS_HOST`` (loopback by
default), by prometheus_client's threaded HTTP server, off the event loop.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

from services.core.errors import ERROR_TYPES, InternalError

logger = logging.getLogger(__name__)

INVALID = "invalid"  # the type label of a frame that did not parse into a request
# Seconds: a status answered from Redis takes about a millisecond, an init up to MANAGER_INIT_TIMEOUT.
COMMAND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Seconds: a reaper sweep over a few pipelines takes about a millisecond, over thousands a good part of a second.
SWEEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ManagerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self._seconds = Histogram(
            "vsim_manager_command_seconds", "Time to answer one request, by request type (parse to reply).",
            ["type"], buckets=COMMAND_BUCKETS, registry=self.registry)
        self._errors = Counter(
            "vsim_manager_command_errors", "Requests answered with a failure, by request type and wire error_type.",
            ["type", "error_type"], registry=self.registry)
        self._in_flight = Gauge("vsim_manager_requests_in_flight", "Requests being answered now.",
                                registry=self.registry)
        self._connections = Gauge("vsim_manager_connections", "TCP clients connected now.", registry=self.registry)
        self._seconds_by_type: dict[str, Any] = {}
        self._sweep_seconds = Histogram(
            "vsim_manager_reaper_sweep_seconds", "Time the reaper took for one sweep over the live pipelines.",
            buckets=SWEEP_BUCKETS, registry=self.registry)
        self._last_sweep_seconds = Gauge("vsim_manager_reaper_last_sweep_seconds",
                                         "Duration of the reaper's latest completed sweep.", registry=self.registry)
        self._last_sweep_pipelines = Gauge("vsim_manager_reaper_last_sweep_pipelines",
                                           "Live pipelines the reaper's latest sweep looked at.",
                                           registry=self.registry)
        self._lease_held = Gauge("vsim_manager_reaper_lease_held",
                                 "1 while this manager holds the reaper lease (its reaper acts), else 0.",
                                 registry=self.registry)

    def answered(self, request_type: str, error_type: str | None, seconds: float) -> None:
        """One request answered: its type (``invalid`` when unparsed), its error type (None: success)."""
        timing = self._seconds_by_type.get(request_type)
        if timing is None:  # labels() takes a lock and builds a key: once per type (a closed set)
            timing = self._seconds_by_type[request_type] = self._seconds.labels(request_type)
        timing.observe(seconds)
        if error_type is not None:  # a task's relayed failure could name anything: keep the label set closed
            known = error_type if error_type in ERROR_TYPES else InternalError.error_type
            self._errors.labels(request_type, known).inc()

    def request_started(self) -> None:
        self._in_flight.inc()

    def request_finished(self) -> None:
        self._in_flight.dec()

    def watch_connections(self, count: Callable[[], int]) -> None:
        """``vsim_manager_connections`` reads ``count()`` at each scrape (nothing to do per connection)."""
        self._connections.set_function(lambda: float(count()))

    def watch_lease(self, held: Callable[[], bool]) -> None:
        """``vsim_manager_reaper_lease_held`` reads ``held()`` at each scrape."""
        self._lease_held.set_function(lambda: 1.0 if held() else 0.0)

    def reaper_swept(self, seconds: float, pipelines: int) -> None:
        """One completed reaper sweep: how long it took and how many live pipelines it looked at."""
        self._sweep_seconds.observe(seconds)
        self._last_sweep_seconds.set(seconds)
        self._last_sweep_pipelines.set(pipelines)


@dataclass(slots=True)
class MetricsEndpoint:
    """A started ``/metrics`` HTTP server; ``port`` is the bound one (0 in the settings picks a free port)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(2.0)


def serve_metrics(metrics: ManagerMetrics, host: str, port: int) -> MetricsEndpoint:
    """Serves ``metrics`` on ``http://host:port/metrics`` (any path answers) from a daemon thread."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    endpoint = MetricsEndpoint(server, thread)
    logger.info("manager metrics on http://%s:%d/metrics", host, endpoint.port)
    return endpoint
