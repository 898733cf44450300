"""Starts a pipeline worker: ``python -m services.worker [--queues Q,...] [--concurrency N] [--hostname H]``.

A Celery worker with the prefork pool, one pipeline per child process. Defaults come from
``WorkerSettings`` (environment ``WORKER_*``: ``WORKER_REDIS_URL``, ``WORKER_DEVICE``,
``WORKER_QUEUES``, ``WORKER_CONCURRENCY``, ``WORKER_HOSTNAME``, ``WORKER_MODEL_REPOSITORY`` ...);
the queue defaults to the device's (``pipelines.cpu`` for ``WORKER_DEVICE=cpu``).
"""

import argparse

from services.core.tasks import queue_for
from services.worker.celery_app import configure_logging, create_app
from services.worker.settings import WorkerSettings


def _arguments(settings: WorkerSettings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--queues", "-Q", default=settings.queues or queue_for(settings.device),
                        help="comma-separated queues to consume (default: the device's queue)")
    parser.add_argument("--concurrency", "-c", type=int, default=settings.concurrency,
                        help="pipelines run at once, one process each")
    parser.add_argument("--hostname", "-n", default=settings.hostname, help="Celery node name")
    parser.add_argument("--loglevel", "-l", default=settings.log_level)
    return parser.parse_args()


def main() -> None:
    settings = WorkerSettings()
    args = _arguments(settings)
    configure_logging(args.loglevel.upper(), settings.log_format)
    # The task processes size their inference threads by the concurrency actually used.
    settings = settings.model_copy(update={"concurrency": args.concurrency})
    app = create_app(settings)
    # JSON logs: no banner, which Celery prints as text.
    quiet = ["--quiet"] if settings.log_format == "json" else []
    argv = [*quiet, "worker", "--pool", "prefork", "--concurrency", str(args.concurrency),
            "--queues", args.queues, "--loglevel", args.loglevel]
    if args.hostname:
        argv += ["--hostname", args.hostname]
    app.worker_main(argv)


if __name__ == "__main__":
    main()
