"""``python -m services.api``: settings from the environment, serve with uvicorn until SIGTERM/SIGINT.

It refuses to start (exit status 2) on a non-loopback bind address without ``API_AUTH_TOKEN``
unless ``API_ALLOW_INSECURE_BIND`` says so, and on TLS files it cannot read. With
``API_TLS_CERT_FILE`` it serves HTTPS only, TLS 1.2 at least.
"""

import asyncio
import logging
import ssl
import sys

import uvicorn

from services.api.app import create_app
from services.api.settings import ApiSettings, is_loopback
from services.core.logs import configure_logging
from services.infra.event_loop import loop_name, run
from services.infra.redis_connect import RedisUrlError

logger = logging.getLogger("services.api")


class StartupRefused(Exception):
    """The settings are unsafe or unusable: the message says what to change."""


def check_bind(settings: ApiSettings) -> None:
    if is_loopback(settings.host) or settings.auth_token is not None or settings.allow_insecure_bind:
        return
    raise StartupRefused(
        f"refusing to listen on {settings.host or 'every interface'!r} without API_AUTH_TOKEN: anyone who reaches "
        "it could start, stop and read pipelines. Set API_AUTH_TOKEN, bind a loopback address "
        "(STREAM_MANAGEMENT_API_HOST=127.0.0.1), or set API_ALLOW_INSECURE_BIND=1 when the port is otherwise "
        "protected (e.g. a container port published on the host's loopback only).")


def uvicorn_config(settings: ApiSettings) -> uvicorn.Config:
    """The server's configuration, loaded (TLS context built), TLS 1.2 at least."""
    cert, key, password = settings.tls_cert_file, settings.tls_key_file, settings.tls_key_password
    # log_config=None: uvicorn's loggers go through the configuration above instead of its own.
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                            log_level=settings.log_level.lower(), lifespan="on",
                            ssl_certfile=None if cert is None else str(cert),
                            ssl_keyfile=None if key is None else str(key),
                            ssl_keyfile_password=None if password is None else password.get_secret_value())
    try:
        config.load()
    except (OSError, ssl.SSLError) as exc:
        raise StartupRefused(f"cannot load the TLS certificate or key (API_TLS_CERT_FILE / API_TLS_KEY_FILE): "
                             f"{exc}") from exc
    if config.ssl is not None:
        config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    return config


async def serve(settings: ApiSettings) -> None:
    config = uvicorn_config(settings)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())  # uvicorn handles SIGTERM/SIGINT itself
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if server.started:
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        scheme = "https" if settings.tls else "http"
        logger.info("stream management API listening on %s://%s:%d (stream manager at %s)%s; event loop: %s", scheme,
                    host, port, settings.manager_address,
                    "; API token required" if settings.auth_token is not None else "", loop_name())
    await serving


def main() -> None:
    settings = ApiSettings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        check_bind(settings)
        settings.redis_target()  # a malformed API_REDIS_URL stops the start, naming it (never its password)
        run(serve(settings), settings.event_loop)
    except (StartupRefused, RedisUrlError) as exc:
        logger.error("%s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
