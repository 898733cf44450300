"""The manager's control-plane metrics on its own HTTP port: command latency by request type and
failures by wire error type, counted at the TCP endpoint whatever the outcome."""

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.manager.conftest import ManagerFactory
from tests.manager.fakes import Client, call
from tests.support.redis_server import free_port


def _scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    (value,) = [value for found, value in samples[name] if found == labels]
    return value


def test_commands_are_timed_by_type_and_failures_counted_by_error_type(start_manager: ManagerFactory) -> None:
    metrics_port = free_port()
    manager = start_manager(metrics_port=metrics_port)
    for _ in range(3):
        call(manager.port, {"type": "list_pipelines"})
    call(manager.port, {"type": "status", "pipeline_id": "nope"})
    call(manager.port, {"type": "terminate", "pipeline_id": "nope"})
    with Client(manager.port) as client:
        client.send_raw(b"\x00\x00\x00\x02{]")  # not JSON: answered, counted as an invalid request
        client.receive_raw()

    samples = _scrape(metrics_port)
    assert _value(samples, "vsim_manager_command_seconds_count", type="list_pipelines") == 3
    assert _value(samples, "vsim_manager_command_seconds_count", type="status") == 1
    assert _value(samples, "vsim_manager_command_errors_total", type="status", error_type="not_found") == 1
    assert _value(samples, "vsim_manager_command_errors_total", type="terminate", error_type="not_found") == 1
    assert _value(samples, "vsim_manager_command_errors_total", type="invalid", error_type="invalid_payload") == 1
    assert not [labels for labels, _ in samples["vsim_manager_command_errors_total"]
                if labels["type"] == "list_pipelines"]
    assert _value(samples, "vsim_manager_requests_in_flight") == 0
    assert "process_resident_memory_bytes" in samples

