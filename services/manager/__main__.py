"""``python -m services.manager``: settings from the environment, serve until SIGTERM/SIGINT."""

import asyncio
import logging
import signal

from services.core.logs import configure_logging
from services.manager.service import ManagerService
from services.manager.settings import ManagerSettings

logger = logging.getLogger("services.manager")


async def serve(settings: ManagerSettings) -> None:
    service = ManagerService(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    try:
        await stop.wait()
        logger.info("stop signal received")
    finally:
        await service.stop()


def main() -> None:
    settings = ManagerSettings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
