"""``python -m services.manager``: settings from the environment, serve until SIGTERM/SIGINT."""

import asyncio
import logging
import signal
import sys

from services.core.logs import configure_logging
from services.infra.event_loop import loop_name, run
from services.infra.heap import freeze_startup_heap
from services.infra.redis_connect import RedisUrlError
from services.manager.server import ssl_context
from services.manager.service import ManagerService
from services.manager.settings import ManagerSettings, insecure_bind

logger = logging.getLogger("services.manager")


async def serve(settings: ManagerSettings) -> None:
    service = ManagerService(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    freeze_startup_heap()  # full collections no longer walk the start-up objects (services.infra.heap)
    logger.info("event loop: %s", loop_name())
    try:
        await stop.wait()
        logger.info("stop signal received")
    finally:
        await service.stop()


def main() -> None:
    settings = ManagerSettings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        logger.info("redis: %s", settings.redis_target().redacted())
    except RedisUrlError as exc:  # names the setting; never the password
        logger.critical("%s", exc)
        sys.exit(2)
    try:
        ssl_context(settings)  # an unreadable certificate or key stops the start here, with a clear message
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        logger.critical("cannot load the TLS certificate or key (MANAGER_TLS_*): %s", exc)
        sys.exit(2)
    refusal = insecure_bind(settings)
    if refusal is not None:
        if not settings.allow_insecure_bind:
            logger.critical("%s", refusal)  # stderr, in the configured format
            sys.exit(2)
        logger.warning("binding %s without authentication (MANAGER_ALLOW_INSECURE_BIND): any client that can "
                       "reach the port can start and stop pipelines", settings.host)
    run(serve(settings), settings.event_loop)


if __name__ == "__main__":
    main()
