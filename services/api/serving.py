"""Serving the API: bind checks, uvicorn's configuration, one process or ``API_WORKERS`` processes.

``python -m services.api`` refuses to start (exit status 2) on a non-loopback bind address without ``API_AUTH_TOKEN``
unless ``API_ALLOW_INSECURE_BIND`` says so, and on TLS files it cannot read. With
``API_TLS_CERT_FILE`` it serves HTTPS only, TLS 1.2 at least.

``API_WORKERS`` > 1 serves from that many processes sharing one listening socket, under uvicorn's
supervisor (it restarts a worker that dies or stops answering its health pings, and stops them all on
SIGTERM/SIGINT). Each process builds its own app from the environment (``services.api.__main__``):
its own manager connection pool and Redis clients; the API holds no pipeline state, so any process
answers any request.
"""

import asyncio
import logging
import ssl

import uvicorn
from fastapi import FastAPI
from uvicorn.config import create_ssl_context
from uvicorn.supervisors import Multiprocess

from services.api.app import create_app
from services.api.settings import ApiSettings, is_loopback
from services.infra.event_loop import loop_name

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


class _Config(uvicorn.Config):
    """uvicorn's configuration, whose TLS context (built in every worker process) takes TLS 1.2 at least."""

    def load(self) -> None:
        super().load()
        if self.ssl is not None:
            self.ssl.minimum_version = ssl.TLSVersion.TLSv1_2

    def check_tls(self) -> None:
        """Builds the TLS context as each worker process will (so unreadable files stop the start here),
        without loading the app (a supervisor passes the configuration, not an app, to its workers)."""
        if self.is_ssl:
            assert self.ssl_certfile is not None
            create_ssl_context(self.ssl_certfile, self.ssl_keyfile, self.ssl_keyfile_password, self.ssl_version,
                               self.ssl_cert_reqs, self.ssl_ca_certs, self.ssl_ciphers)


def uvicorn_config(settings: ApiSettings, app: FastAPI | str | None = None) -> uvicorn.Config:
    """The server's configuration, loaded (TLS context built, which checks the files), TLS 1.2 at least;
    ``app`` by default this process's own, or an import string (a factory) for worker processes."""
    cert, key, password = settings.tls_cert_file, settings.tls_key_file, settings.tls_key_password
    # log_config=None: uvicorn's loggers go through the configuration above instead of its own.
    config = _Config(create_app(settings) if app is None else app, host=settings.host, port=settings.port,
                     log_config=None, log_level=settings.log_level.lower(), lifespan="on",
                     factory=isinstance(app, str), workers=settings.workers, loop=settings.event_loop,
                     ssl_certfile=None if cert is None else str(cert),
                     ssl_keyfile=None if key is None else str(key),
                     ssl_keyfile_password=None if password is None else password.get_secret_value())
    try:
        if isinstance(app, str):
            config.check_tls()
        else:
            config.load()
    except (OSError, ssl.SSLError) as exc:
        raise StartupRefused(f"cannot load the TLS certificate or key (API_TLS_CERT_FILE / API_TLS_KEY_FILE): "
                             f"{exc}") from exc
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


def serve_workers(settings: ApiSettings, factory: str) -> None:
    """``settings.workers`` processes on one socket, under uvicorn's supervisor, until SIGTERM/SIGINT; each
    builds its app with ``factory`` ("module:function", imported by name in each process)."""
    config = uvicorn_config(settings, factory)
    sock = config.bind_socket()
    host, port = sock.getsockname()[:2]
    logger.info("stream management API listening on %s://%s:%d with %d worker processes (stream manager at %s)%s",
                "https" if settings.tls else "http", host, port, settings.workers, settings.manager_address,
                "; API token required" if settings.auth_token is not None else "")
    Multiprocess(config, sockets=[sock]).run()


