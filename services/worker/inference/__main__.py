"""``python -m services.worker.inference --socket PATH``: the per-device inference service process.

Started (and restarted) by the worker's main process (``process.InferenceServiceProcess``), with
the worker's environment, so it reads the same ``WORKER_*`` settings: device, model repository,
runners, batch size, models to preload, TensorRT cache. It ends on SIGTERM, or by itself when the
process that started it is gone.
"""

import argparse
import logging
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from services.core import logs
from services.infra.os_threads import name_os_thread
from services.worker.cores import usable_cores
from services.worker.detection.detector import SessionRunner, load_runner
from services.worker.inference.server import InferenceServer
from services.worker.inference.service import InferenceService
from services.worker.models.repository import ModelRepository, ModelSpec
from services.worker.settings import WorkerSettings

log = logging.getLogger("services.worker.inference")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--parent", type=int, default=None, help="exit when this process is gone")
    args = parser.parse_args(argv)
    settings = WorkerSettings()
    logs.configure_logging(settings.log_level, settings.log_format,
                           "%(asctime)s %(levelname)s inference-service %(name)s: %(message)s")
    cores = usable_cores()  # the affinity and the cgroup's CPU quota, not the host's core count
    runners, threads = settings.service_sizing(cores.usable)
    live_threads = settings.service_live_threads(cores.usable)

    def loader(spec: ModelSpec) -> SessionRunner:
        return load_runner(spec, settings.device, threads, False, settings.tensorrt_cache)

    def live_loader(spec: ModelSpec) -> SessionRunner:
        return load_runner(spec, settings.device, live_threads, False, settings.tensorrt_cache)

    repository = ModelRepository(settings.model_repository)
    service = InferenceService(repository, loader, runners, settings.inference_max_batch,
                               live_loader if live_threads else None)
    server = InferenceServer(service, args.socket)
    server.bind()

    def stop(signum: int, frame: FrameType | None) -> None:
        server.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=_preload, args=(service, settings.preload()), name="preload", daemon=True).start()
    if args.parent is not None:
        threading.Thread(target=_watch_parent, args=(args.parent, server), name="parent", daemon=True).start()
    log.info("inference service on %s: device %s, %d runner(s) x %d thread(s), batches up to %d frames%s; %s",
             args.socket, settings.device, runners, threads, settings.inference_max_batch,
             f", live-only load: 1 run x {live_threads} thread(s)" if live_threads else "", cores.describe())
    try:
        server.serve_forever()
    finally:
        service.stop()
        log.info("inference service stopped")


def _preload(service: InferenceService, model_ids: tuple[str, ...]) -> None:
    name_os_thread()
    for model_id in model_ids:
        try:
            service.load(model_id)
        except Exception as exc:  # a pipeline asking for it gets the same error then
            log.warning("could not preload %s: %s: %s", model_id, type(exc).__name__, exc)


def _watch_parent(parent: int, server: InferenceServer) -> None:
    name_os_thread()
    while os.getppid() == parent:
        time.sleep(1.0)
    log.warning("the worker (pid %d) is gone: stopping", parent)
    server.close()


if __name__ == "__main__":
    main()
