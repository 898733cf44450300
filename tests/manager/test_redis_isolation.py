"""Reply waits cannot starve requests or the reaper: each has its own Redis connections.

Waiting for a task's reply is a BLPOP that holds a connection for seconds. Here every INIT waits (the
fake worker never answers) with long blocking steps on a request pool of two connections: with one
shared pool, list_pipelines then waited for a connection past its handler's timeout and failed, and the
reaper's sweep failed the same way (logged as a Redis outage) so a finished pipeline stayed listed.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import redis

from services.core import keys
from tests.manager.conftest import ManagerFactory
from tests.manager.fakes import FakeWorker, call, register_worker
from tests.manager.test_control import orphan_pipeline
from tests.manager.test_server import INIT_PAYLOAD


def test_waiting_inits_starve_neither_requests_nor_the_reaper(
    start_manager: ManagerFactory, fake_worker: FakeWorker, redis_client: redis.Redis
) -> None:
    # BLPOP steps of 9 s (socket timeout - 1) outlast the 8 s INIT wait: each INIT holds its connection
    # throughout; a request's handler gives up after command_timeout + 5 = 6 s.
    manager = start_manager(redis_pool_size=2, init_timeout=8.0, redis_socket_timeout=10.0, command_timeout=1.0)
    register_worker(redis_client)
    fake_worker.behaviour = "silent"
    with ThreadPoolExecutor(max_workers=4) as pool:
        inits = [pool.submit(call, manager.port, INIT_PAYLOAD) for _ in range(4)]
        while len(fake_worker.calls) < 4:  # every INIT is now waiting for its reply
            time.sleep(0.05)
        finished = orphan_pipeline(redis_client, state="ENDED")

        listed = call(manager.port, {"type": "list_pipelines"})["response"]

        assert listed["status"] == "success", listed
        deadline = time.monotonic() + 5.0
        while redis_client.sismember(keys.pipelines_index(), finished) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not redis_client.sismember(keys.pipelines_index(), finished), "the reaper did not sweep"
        for init in inits:
            assert init.result(timeout=30)["response"]["error_type"] == "operation_error"
