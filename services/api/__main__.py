"""``python -m services.api``: settings from the environment, serve with uvicorn until SIGTERM/SIGINT."""

import asyncio
import logging

import uvicorn

from services.api.app import create_app
from services.api.settings import ApiSettings
from services.core.logs import configure_logging

logger = logging.getLogger("services.api")


async def serve(settings: ApiSettings) -> None:
    # log_config=None: uvicorn's loggers go through the configuration above instead of its own.
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                            log_level=settings.log_level.lower(), lifespan="on")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())  # uvicorn handles SIGTERM/SIGINT itself
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if server.started:
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        logger.info("stream management API listening on http://%s:%d (stream manager at %s)",
                    host, port, settings.manager_address)
    await serving


def main() -> None:
    settings = ApiSettings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
