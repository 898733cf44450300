"""``python -m services.api``: settings from the environment, serve with uvicorn until SIGTERM/SIGINT
(:mod:`services.api.serving`)."""

import logging
import sys

from fastapi import FastAPI

from services.api.app import create_app
from services.api.serving import StartupRefused, check_bind, serve, serve_workers
from services.api.settings import ApiSettings
from services.core.logs import configure_logging
from services.infra.event_loop import run
from services.infra.redis_connect import RedisUrlError

logger = logging.getLogger("services.api")


def app_from_environment() -> FastAPI:
    """The app of each worker process of ``API_WORKERS`` > 1 (uvicorn imports this module by name in each)."""
    settings = ApiSettings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)


def main() -> None:
    settings = ApiSettings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        check_bind(settings)
        settings.redis_target()  # a malformed API_REDIS_URL stops the start, naming it (never its password)
        if settings.workers > 1:
            serve_workers(settings, "services.api.__main__:app_from_environment")
        else:
            run(serve(settings), settings.event_loop)
    except (StartupRefused, RedisUrlError) as exc:
        logger.error("%s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
