"""Flower, Celery's monitoring UI, on the pipelines' broker: ``python -m services.worker.flower``.

Flower shows the workers, their queues and every pipeline task from the workers' task events
(``worker_send_task_events`` is on in ``services.core.tasks``). It can also revoke and terminate
tasks, shut workers down and send tasks by name, so it never starts without HTTP basic auth unless
that is explicitly allowed. Flower itself keeps ``/healthcheck`` and ``/metrics`` open even with
basic auth (for probes and Prometheus); both show no task arguments.

Settings (environment; Flower's own names where Flower has one):

- ``FLOWER_REDIS_URL``: the broker (default ``redis://127.0.0.1:6379/0``), the workers' ``WORKER_REDIS_URL``; a
  ``redis+sentinel://`` URL too (``services.infra.redis_connect``: kombu's Sentinel transport, which Flower's
  broker tab reads as well).
- ``FLOWER_BASIC_AUTH``: ``user:password``, comma-separated pairs allowed. Required.
- ``FLOWER_ALLOW_NO_AUTH``: ``1`` starts without basic auth anyway (Flower's API then still answers 401
  unless Flower's own ``FLOWER_UNAUTHENTICATED_API`` is set).
- ``FLOWER_ADDRESS`` / ``FLOWER_PORT``: bind address and port (default ``127.0.0.1`` / ``5555``).
- ``FLOWER_PERSISTENT`` / ``FLOWER_DB``: keep Flower's task history in the shelve file ``FLOWER_DB``
  across restarts. Off by default: Flower's default file is ``./flower`` in the working directory,
  so persistence needs an explicit location.

Other ``FLOWER_*`` variables (e.g. ``FLOWER_READ_ONLY=true``, ``FLOWER_INSPECT_TIMEOUT``) are read
by Flower itself. The Celery app is a plain one with the project's shared configuration: Flower
needs the broker, not the worker's task code, and so cannot ``apply`` a pipeline task by itself.
Importing this module loads neither Flower nor tornado.
"""

import atexit
import logging
import os
import sys
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from celery import Celery

USAGE_ERROR = 2


class FlowerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWER_", extra="ignore", validate_by_name=True)

    redis_url: str = "redis://127.0.0.1:6379/0"
    basic_auth: SecretStr | None = None
    allow_no_auth: bool = False
    address: str = "127.0.0.1"
    port: int = Field(default=5555, ge=1, le=65535)
    persistent: bool = False
    db: str | None = None

    @field_validator("redis_url")
    @classmethod
    def _usable_url(cls, value: str) -> str:
        from services.infra.redis_connect import RedisUrlError, parse_redis_url

        try:
            parse_redis_url(value, "FLOWER_REDIS_URL")
        except RedisUrlError as exc:  # _problems names the setting; the message holds no secret
            raise ValueError(str(exc).removeprefix("FLOWER_REDIS_URL: ")) from None
        return value

    @model_validator(mode="after")
    def _persistence_needs_a_location(self) -> "FlowerSettings":
        if self.persistent and not self.db:
            raise ValueError("FLOWER_PERSISTENT needs FLOWER_DB, the state file's path (outside the repository)")
        return self

    def credentials(self) -> list[str]:
        """The ``user:password`` pairs of ``FLOWER_BASIC_AUTH``; raises ``ValueError`` naming a malformed one.

        Flower compares the whole ``user:password`` of a request with each pair, so a pair without a
        user or a password would either lock everyone out or let in an empty password.
        """
        if self.basic_auth is None or not self.basic_auth.get_secret_value().strip():
            return []
        pairs = [pair.strip() for pair in self.basic_auth.get_secret_value().split(",")]
        for number, pair in enumerate(pairs, 1):
            user, separator, password = pair.partition(":")
            if not user or not separator or not password:
                raise ValueError(f"FLOWER_BASIC_AUTH pair {number} is not 'user:password' "
                                 f"(comma-separated pairs; a password cannot contain ',')")
        return pairs


def flower_argv(settings: FlowerSettings) -> list[str]:
    """``celery flower`` arguments; raises ``ValueError`` when basic auth is missing and not allowed to be."""
    credentials = settings.credentials()
    if not credentials and not settings.allow_no_auth:
        raise ValueError(
            "refusing to start Flower without authentication: it can revoke and terminate pipeline tasks "
            "and shut workers down. Set FLOWER_BASIC_AUTH=user:password (comma-separated pairs allowed), "
            "or FLOWER_ALLOW_NO_AUTH=1 to run it open anyway."
        )
    argv = ["flower", f"--address={settings.address}", f"--port={settings.port}",
            f"--persistent={settings.persistent}"]
    if settings.persistent and settings.db:
        argv.append(f"--db={settings.db}")
    if credentials:  # one option: tornado keeps only the last of a repeated one
        # In-process arguments: the password never appears in the process's command line.
        argv.append(f"--basic_auth={','.join(credentials)}")
    return argv


def _celery_app(settings: FlowerSettings) -> "Celery":
    from celery import Celery  # imported only once the settings are valid: a refusal stays quick

    from services.core.tasks import celery_config
    from services.infra.redis_connect import with_celery_connection

    app = Celery("vsim-flower", set_as_current=False)
    app.conf.update(with_celery_connection(celery_config(""), settings.redis_url, "FLOWER_REDIS_URL"))
    return app


def _problems(exc: ValidationError) -> str:
    """Each error as ``FLOWER_NAME: message``, without the offending input."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        names = ".".join(map(str, error["loc"]))
        problems.append(f"FLOWER_{names.upper()}: {message}" if names else message)
    return "; ".join(problems)


def main() -> int:
    try:
        settings = FlowerSettings()
        argv = flower_argv(settings)
    except ValidationError as exc:  # its own str() would print the inputs, FLOWER_BASIC_AUTH included
        print(f"python -m services.worker.flower: invalid settings: {_problems(exc)}", file=sys.stderr)
        return USAGE_ERROR
    except ValueError as exc:
        print(f"python -m services.worker.flower: {exc}", file=sys.stderr)
        return USAGE_ERROR
    app = _celery_app(settings)
    status = int(app.start(argv) or 0)
    _exit_now(status)
    return status  # not reached


def _exit_now(status: int) -> None:
    """Ends the process once Flower's event loop has stopped (SIGTERM/SIGINT), without waiting for its threads.

    Flower's inspect and enable-events calls run in a thread pool that the interpreter joins at
    exit; with the broker gone they retry for minutes (measured: SIGTERM took 33 s with Redis
    stopped), so a stack shutting down would wait for them or kill Flower. Flower's own exit
    handler (which saves a persistent state) runs first.
    """
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
