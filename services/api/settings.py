"""The HTTP API's settings, read once from the environment in ``__main__`` and passed down.

The reference's names are kept where they exist: ``STREAM_MANAGEMENT_API_HOST`` / ``_PORT`` for the
bind address and ``STREAM_MANAGER_HOST`` / ``_PORT`` for the manager (which ``API_MANAGER_HOST`` /
``_PORT`` override, for a host that runs the API beside a manager configured differently).
Everything else is ``API_<FIELD>``. Field names work as constructor arguments (tests, embedding).
"""

from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.client.addresses import parse_addresses
from services.core.logs import LogFormat
from services.core.settings_values import comma_list, is_loopback
from services.infra.event_loop import EventLoopChoice
from services.infra.redis_connect import RedisTarget, parse_redis_url


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="API_", extra="ignore", populate_by_name=True)

    # Loopback by default: the API controls cameras and carries API keys; exposing it is a choice.
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("STREAM_MANAGEMENT_API_HOST"))
    # 0 binds a free port; the bound one is logged.
    port: int = Field(default=8080, ge=0, le=65535, validation_alias=AliasChoices("STREAM_MANAGEMENT_API_PORT"))
    manager_host: str = Field(default="127.0.0.1",
                              validation_alias=AliasChoices("API_MANAGER_HOST", "STREAM_MANAGER_HOST"))
    manager_port: int = Field(default=7070, ge=1, le=65535,
                              validation_alias=AliasChoices("API_MANAGER_PORT", "STREAM_MANAGER_PORT"))
    # Several managers sharing one Redis, comma-separated host:port (a host alone: manager_port); when set it
    # replaces manager_host / manager_port. A connection that cannot be made goes to the next address
    # (services.client.addresses); one that failed is tried after the others for manager_retry_after seconds.
    manager_addresses: Annotated[tuple[str, ...], NoDecode] = ()
    manager_retry_after: float = Field(default=5.0, gt=0)
    manager_connect_timeout: float = Field(default=3.0, gt=0)  # each connection attempt, with several addresses
    manager_timeout: float = Field(default=10.0, gt=0)  # every command but INIT
    # INIT waits for a worker to load the model and open the sources (the manager's own limit is 30 s).
    init_timeout: float = Field(default=60.0, gt=0)
    readiness_timeout: float = Field(default=2.0, gt=0)  # each dependency check of /readyz
    # Persistent manager connections (services.api.manager_pool): at most this many, one request in flight on
    # each (requests beyond wait for one); closed after idling this long (keep it below MANAGER_IDLE_TIMEOUT)
    # and after carrying this many requests (keep it below MANAGER_MAX_REQUEST_BURST; 0: no limit).
    manager_pool_size: int = Field(default=8, ge=1)
    manager_pool_idle_timeout: float = Field(default=10.0, gt=0)
    manager_pool_max_requests: int = Field(default=100, ge=0)
    # Optional: when set, /readyz also requires Redis to answer PING, and (with stored_reads) the API answers
    # list and status from it as the manager would, sparing a manager round trip each. May hold a password.
    redis_url: SecretStr | None = None
    # Answer list and status from redis_url (services.infra.pipeline_reads.StoredReads); a status whose stored report
    # is older than status_max_age (keep it equal to MANAGER_STATUS_MAX_AGE; 0: never) goes to the manager,
    # which asks the task, and so does every error case.
    stored_reads: bool = True
    status_max_age: float = Field(default=2.0, ge=0)
    # The manager's shared token (its MANAGER_AUTH_TOKEN), the same variable the TCP clients read.
    manager_token: SecretStr | None = Field(default=None,
                                            validation_alias=AliasChoices("API_MANAGER_TOKEN", "STREAM_MANAGER_TOKEN"))
    # Browser origins allowed to call the API (CORS); none by default.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # Optional shared token of this API: when set, every route but the open ones (/healthz, /readyz, the
    # dashboard's static page, the OpenAPI docs) needs ``Authorization: Bearer <token>``. Empty = unset.
    auth_token: SecretStr | None = None
    # Binding a non-loopback address without auth_token is refused unless this is set (e.g. in a
    # container whose port is published on the host's loopback only).
    allow_insecure_bind: bool = False
    # Optional TLS: a PEM certificate (chain) and its private key; the API then serves HTTPS only.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_key_password: SecretStr | None = Field(default=None, repr=False)
    # Largest request body in bytes (the manager's own frame cap is 1 MiB): larger is refused with 413.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    # Processes serving the API on one socket (uvicorn's supervisor restarts one that dies); > 1 lets list and
    # status (answered from Redis, see stored_reads) use more than one core. 1: this process alone.
    workers: int = Field(default=1, ge=1, le=64)
    # "auto" (uvloop when installed, else asyncio), "uvloop" or "asyncio" (services/infra/event_loop.py).
    event_loop: EventLoopChoice = "auto"
    log_level: str = "INFO"
    # "text" or "json" (one object per line); VSIM_LOG_FORMAT sets every service's at once.
    log_format: LogFormat = Field(default="text", validation_alias=AliasChoices("API_LOG_FORMAT", "VSIM_LOG_FORMAT"))

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return comma_list(value)

    @field_validator("manager_addresses", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        return tuple(str(item).strip() for item in comma_list(value) if str(item).strip())

    @model_validator(mode="after")
    def _addresses_parse(self) -> "ApiSettings":
        if self.manager_addresses:
            try:
                parse_addresses(self.manager_addresses, self.manager_port)
            except ValueError as exc:
                raise ValueError(f"API_MANAGER_ADDRESSES: {exc}") from None
        return self

    @field_validator("auth_token", "tls_key_password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # compose passes an unset variable as an empty string: that means no token, not an empty one
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(text, str) and not text.strip() else value

    @field_validator("tls_cert_file", "tls_key_file", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _key_needs_a_certificate(self) -> "ApiSettings":
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise ValueError("API_TLS_KEY_FILE is set without API_TLS_CERT_FILE")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def manager_address(self) -> str:
        """The manager's address, or the comma-separated list of API_MANAGER_ADDRESSES."""
        if self.manager_addresses:
            return ",".join(self.manager_addresses)
        return f"{self.manager_host}:{self.manager_port}"

    def redis_target(self) -> RedisTarget | None:
        """``API_REDIS_URL`` parsed (plain or Sentinel), None when unset; raises ``RedisUrlError`` naming it."""
        return None if self.redis_url is None else parse_redis_url(self.redis_url.get_secret_value(), "API_REDIS_URL")


__all__ = ["ApiSettings", "is_loopback"]
