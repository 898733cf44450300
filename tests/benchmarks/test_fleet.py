"""The fleet simulator of tests/benchmarks/fleet.py at a tiny size, against a real redis-server and a real
manager process: 2 simulated workers with 2 slots each take 4 pipelines INITed through the TCP client."""

import time
from pathlib import Path

import pytest

from services.client import ManagerClient
from services.client.errors import ProcessesManagerOperationError
from services.worker import supervisor
from tests.benchmarks.fleet import Timings, Window, conclusion, knee, percentile, reach
from tests.support import fleet as fleet_module
from tests.support.fleet import running_fleet
from tests.support.redis_server import running_redis
from tests.support.stack import running_stack
from tests.support.waiting import wait_until
from tools.payloads import newer_init


def test_the_simulator_ticks_at_the_supervisors_period() -> None:
    assert fleet_module.TICK_PERIOD == supervisor.PERIOD  # a copy: importing the supervisor loads the engine


def test_simulated_workers_run_pipelines_started_through_the_real_manager(tmp_path: Path) -> None:
    with (running_redis() as server, running_stack(server.url) as stack,
          running_fleet(server.url, tmp_path, processes=1, concurrency=2) as fleet):
        stack.start_manager(MANAGER_LOG_LEVEL="WARNING")
        fleet.grow(2)
        for hostname in ("sim-0000@fleet", "sim-0001@fleet"):
            found = stack.registration(hostname)
            assert found is not None and found["queues"] == ["pipelines.cpu"] and found["concurrency"] == 2

        client = ManagerClient(port=stack.port)
        pipeline_ids = [client.initialise(newer_init("data/media/vtest.avi")).context.pipeline_id for _ in range(4)]
        assert len({*pipeline_ids}) == 4 and None not in pipeline_ids

        def running() -> bool:
            return all(client.status(str(pid)).report.pipeline_state == "RUNNING" for pid in pipeline_ids)

        wait_until(running, timeout=20)
        status = client.status(str(pipeline_ids[0]))
        assert status.report.inference_throughput == 25.0  # the simulated task's report, stored and served
        assert status.report.sources_metadata[0].source_reference == "data/media/vtest.avi"
        assert sorted(client.list_pipelines().pipelines) == sorted(str(pid) for pid in pipeline_ids)

        def busy(count: int) -> bool:
            found = [stack.registration(h) for h in ("sim-0000@fleet", "sim-0001@fleet")]
            return sum(int(r["busy_slots"]) for r in found if r is not None) == count  # type: ignore[call-overload]

        wait_until(lambda: busy(4), timeout=5)  # every slot taken, published in the registrations
        # admission reads the simulated workers' room
        with pytest.raises(ProcessesManagerOperationError, match=r"no capacity on pipelines\.cpu"):
            client.initialise(newer_init("data/media/vtest.avi"))

        client.terminate(str(pipeline_ids[0]))
        wait_until(lambda: busy(3), timeout=10)  # the simulated task saw TERMINATED and freed its slot
        assert client.status(str(pipeline_ids[0])).report.pipeline_state == "TERMINATED"

        time.sleep(1.5)  # a few ticks of the three still running
        stats = fleet.stats()
        assert stats["claimed"] == 4 and stats["running"] == 3 and stats["ended"] == 1
        assert stats["ticks"] >= 3 and stats["errors"] == 0, stats


def _window(workers: int, redis_cpu: float, manager_cpu: float, sweep: float, status_p99: float) -> Window:
    fleet = {"round_trip_p99": 0.001, "late_p99": 0.001, "first_errors": []}
    return Window(workers=workers, pipelines=16 * workers, inits=Timings([0.03]), status=Timings([status_p99]),
                  listing=Timings([0.005]), seconds=10.0, redis_commands=0.0, redis_cpu=redis_cpu, commands={},
                  manager_cpu=manager_cpu, simulator_cpu=0.1, client_cpu=0.05, host_cpu=0.3, sweep_mean=sweep,
                  sweep_max=sweep, sweep_pipelines=16.0 * workers, fleet=fleet)


def test_the_figure_is_extrapolated_from_the_curve_and_names_the_first_limit() -> None:
    # Redis: 1% + 0.1% of a core per worker (one core at 990); manager: 0.2% per worker (500); sweep: 1 ms per
    # worker (1 s at 1,000). STATUS p99 doubles (and by more than 5 ms) first at 100 workers.
    windows = [_window(w, 0.01 + 0.001 * w, 0.002 * w, 0.001 * w, 0.004 if w < 100 else 0.020)
               for w in (10, 25, 50, 100, 200)]
    assert reach([10, 20], [0.1, 0.2], 1.0) == pytest.approx(100)
    assert reach([10, 20], [0.2, 0.2], 1.0) is None  # flat: never
    assert knee(windows, lambda w: percentile(w.status.latencies, 0.99)) is windows[3]
    assert knee(windows, lambda w: percentile(w.inits.latencies, 0.99)) is None
    text = conclusion(windows, 16)
    assert "Redis's CPU reaches one full core at about 990 workers (15,840 pipelines)" in text
    assert "first limited by the manager's CPU" in text and "carry about 500 workers (8,000 pipelines)" in text
    assert "STATUS p99 bends at 100 workers (20.0 ms against 4.0 ms at 10)" in text
    assert "INIT p99 has none up to 200 workers" in text
