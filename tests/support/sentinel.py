"""A real Redis Sentinel deployment for the tests: a master, one replica and three sentinels.

``with running_sentinel() as deployment:`` starts two ``redis-server`` processes (the second with
``--replicaof`` the first) and three sentinels (``redis-server <conf> --sentinel``, each with its own
config file in a temporary directory: sentinels rewrite it), all on free loopback ports, with
passwords on the data servers and on the sentinels, and waits until the replica is in sync and every
sentinel knows the replica and the other two. ``deployment.url`` is the project's Sentinel URL for it.
``kill_master()`` SIGKILLs the current master; ``wait_for_failover()`` waits until the sentinels
name the other server. Failure detection is fast on purpose: ``down-after-milliseconds`` 1000 and a
``failover-timeout`` of a few seconds. Everything is stopped on exit; a missing ``redis-server``
fails the test (never a skip).
"""

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tools.embedded_redis import free_port

MASTER_NAME = "vsim"
PASSWORD = "data-s3cret-pw"  # the data servers' requirepass / masterauth
SENTINEL_PASSWORD = "sentinel-s3cret-pw"  # the sentinels' own requirepass
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; `make setup` installs Debian's redis-server")
    return binary


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if predicate():
                return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


@dataclass
class SentinelDeployment:
    directory: Path
    data_ports: list[int] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)
    processes: dict[int, "subprocess.Popen[bytes]"] = field(default_factory=dict)  # by port

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://:{PASSWORD}@{hosts}/{MASTER_NAME}/0?sentinel_password={SENTINEL_PASSWORD}"

    def data_client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=PASSWORD, socket_timeout=2, socket_connect_timeout=1)

    def sentinel_client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=SENTINEL_PASSWORD, socket_timeout=2, socket_connect_timeout=1,
                           decode_responses=True)

    def master_port(self) -> int:
        """The master's port as the first sentinel that answers names it."""
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError), contextlib.closing(self.sentinel_client(port)) as client:
                address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
                if address:
                    return int(address[1])
        raise RuntimeError("no sentinel answers")

    # ----------------------------------------------------------------- start

    def _spawn(self, port: int, arguments: list[str]) -> None:
        log = open(self.directory / f"{port}.log", "ab")  # noqa: SIM115 (the child keeps its descriptor)
        with log:
            self.processes[port] = subprocess.Popen([_binary(), *arguments], stdout=log, stderr=subprocess.STDOUT,
                                                    cwd=self.directory)

    def start(self) -> None:
        master, replica = free_port(), free_port()
        self.data_ports = [master, replica]
        for port in self.data_ports:
            data_dir = self.directory / f"data-{port}"
            data_dir.mkdir()
            arguments = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                         "--dir", str(data_dir), "--requirepass", PASSWORD, "--masterauth", PASSWORD]
            if port == replica:
                arguments += ["--replicaof", "127.0.0.1", str(master)]
            self._spawn(port, arguments)
        _wait(lambda: self._replica_in_sync(master), 15, "the replica to sync")
        self.sentinel_ports = [free_port() for _ in range(3)]
        for port in self.sentinel_ports:
            conf = self.directory / f"sentinel-{port}.conf"
            conf.write_text("\n".join([
                f"port {port}", "bind 127.0.0.1", f"dir {self.directory}", f"requirepass {SENTINEL_PASSWORD}",
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2",
                f"sentinel auth-pass {MASTER_NAME} {PASSWORD}",
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {MASTER_NAME} 1", "",
            ]))
            self._spawn(port, [str(conf), "--sentinel"])
        for port in self.sentinel_ports:
            _wait(lambda port=port: self._sentinel_ready(port), 30, f"sentinel {port} to see the replica and its peers")

    def _replica_in_sync(self, master: int) -> bool:
        with contextlib.closing(self.data_client(master)) as client:
            info = client.info("replication")
            return int(info.get("connected_slaves", 0)) >= 1 and info.get("slave0", {}).get("state") == "online"

    def _sentinel_ready(self, port: int) -> bool:
        with contextlib.closing(self.sentinel_client(port)) as client:
            replicas = client.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)
            peers = client.execute_command("SENTINEL", "SENTINELS", MASTER_NAME)
            return len(replicas) >= 1 and len(peers) >= 2

    # ----------------------------------------------------------------- faults

    def kill_master(self) -> int:
        """SIGKILLs the current master; its port."""
        port = self.master_port()
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        return port

    def wait_for_failover(self, old_master: int, timeout: float = 30) -> int:
        """Waits until every sentinel names a master other than ``old_master``; its port."""
        def moved() -> bool:
            for port in self.sentinel_ports:
                with contextlib.closing(self.sentinel_client(port)) as client:
                    address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
                    if not address or int(address[1]) == old_master:
                        return False
            return True

        _wait(moved, timeout, "the sentinels to promote the replica")
        new_master = self.master_port()
        _wait(lambda: self.data_client(new_master).info("replication")["role"] == "master", timeout,
              "the promoted replica to take the master role")
        return new_master

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def running_sentinel() -> Iterator[SentinelDeployment]:
    with tempfile.TemporaryDirectory(prefix="vsim-sentinel-") as tmp:
        deployment = SentinelDeployment(Path(tmp))
        try:
            deployment.start()
            yield deployment
        finally:
            deployment.stop()
