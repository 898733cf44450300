"""The reaper's sweep metrics on the manager's /metrics port: each completed sweep's duration and size."""

import redis

from tests.manager.conftest import ManagerFactory
from tests.manager.fakes import call, register_worker
from tests.manager.test_metrics import _scrape, _value
from tests.manager.test_server import INIT_PAYLOAD
from tests.support.redis_server import free_port
from tests.support.waiting import wait_until


def test_each_sweep_is_timed_and_counts_the_live_pipelines(start_manager: ManagerFactory,
                                                           redis_client: redis.Redis) -> None:
    metrics_port = free_port()
    manager = start_manager(metrics_port=metrics_port)
    register_worker(redis_client)
    for _ in range(2):
        assert call(manager.port, INIT_PAYLOAD)["response"] == {"status": "success"}

    def swept_both() -> bool:
        return _value(_scrape(metrics_port), "vsim_manager_reaper_last_sweep_pipelines") == 2

    wait_until(swept_both, timeout=10)
    samples = _scrape(metrics_port)
    last = _value(samples, "vsim_manager_reaper_last_sweep_seconds")
    assert 0 < last < 5
    sweeps = _value(samples, "vsim_manager_reaper_sweep_seconds_count")
    assert sweeps >= 1
    assert 0 < _value(samples, "vsim_manager_reaper_sweep_seconds_sum") < 5 * sweeps

    wait_until(lambda: _value(_scrape(metrics_port), "vsim_manager_reaper_sweep_seconds_count") > sweeps,
               timeout=10)  # the reaper keeps sweeping (every 0.1 s here), each sweep counted
