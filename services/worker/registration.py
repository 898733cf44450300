"""The worker's registration: a key with a short TTL that tells the manager a queue has a live worker.

A daemon thread in the worker's main process refreshes ``keys.worker_registration(hostname)``
every second (``SET ... EX 5``); the key is deleted on a clean shutdown and expires after a crash.
Redis errors are logged once per outage and retried on the next beat.
"""

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
import redis

from services.core import keys

log = logging.getLogger(__name__)

PERIOD = 1.0  # seconds
TTL = 5  # seconds


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    hostname: str
    queues: tuple[str, ...]
    concurrency: int
    device: str


class Registration:
    def __init__(
        self,
        client: redis.Redis,
        identity: WorkerIdentity,
        busy_slots: Callable[[], int] = lambda: 0,
    ) -> None:
        self._client = client
        self._identity = identity
        self._busy_slots = busy_slots
        self._key = keys.worker_registration(identity.hostname)
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="registration", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stops refreshing and deletes the key (best effort: it expires anyway)."""
        self._stop.set()
        self._thread.join(timeout)
        try:
            self._client.delete(self._key)
        except redis.RedisError as exc:
            log.warning("could not delete worker registration %s: %s", self._key, exc)

    def payload(self) -> dict[str, Any]:
        memory = psutil.virtual_memory()
        busy = self._busy_slots()
        return {
            "hostname": self._identity.hostname,
            "queues": list(self._identity.queues),
            "concurrency": self._identity.concurrency,
            "free_slots": max(0, self._identity.concurrency - busy),
            "device": self._identity.device,
            "pid": os.getpid(),
            "ram_total_mb": memory.total // 2**20,
            "ram_available_mb": memory.available // 2**20,
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            self._beat()
            self._stop.wait(PERIOD)

    def _beat(self) -> None:
        try:
            self._client.set(self._key, json.dumps(self.payload()), ex=TTL)
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("worker registration %s not refreshed: %s", self._key, exc)
            self._failing = True
            return
        if self._failing:
            log.info("worker registration %s refreshed again", self._key)
        self._failing = False

