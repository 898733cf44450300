"""``python -m services.worker.health``: exit 0 while this host's worker is registered in Redis, else 1.

The container healthcheck of a worker. The worker's main process refreshes its registration key
(``keys.worker_registration(nodename)``, TTL 5 s) every second once Celery is ready, so the key's
presence proves at once that the worker started its consumer, that its main process is alive and
that it reaches Redis: what the manager itself requires before it dispatches a pipeline to the
queue. One GET, no Celery broadcast. The node name is the worker's own: ``WORKER_HOSTNAME``
(Celery's ``%h``-style placeholders expanded) or Celery's default ``celery@<hostname>``.
"""

import sys

import redis
from celery.utils.nodenames import default_nodename, host_format

from services.core import keys
from services.infra.redis_connect import RedisUrlError, sync_client
from services.worker.settings import WorkerSettings


def nodename(settings: WorkerSettings) -> str:
    """The Celery node name ``python -m services.worker`` runs under with these settings."""
    return str(host_format(default_nodename(settings.hostname or None)))


def check(settings: WorkerSettings, timeout: float = 3.0) -> tuple[bool, str]:
    """(healthy, one line saying why)."""
    name = nodename(settings)
    try:
        client = sync_client(settings.redis_target(), socket_timeout=timeout, socket_connect_timeout=timeout)
    except RedisUrlError as exc:
        return False, f"worker {name}: {exc}"
    try:
        registered = client.exists(keys.worker_registration(name))
    except redis.RedisError as exc:  # the message never holds the URL's password
        return False, f"worker {name}: redis unreachable: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    if not registered:
        return False, f"worker {name}: not registered (starting, stopped, or cannot refresh its registration)"
    return True, f"worker {name}: registered"


def main() -> int:
    healthy, detail = check(WorkerSettings())
    print(detail)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
