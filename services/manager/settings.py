"""The manager's settings, read once from the environment in ``__main__`` and passed down.

The reference's names are kept where they exist (``STREAM_MANAGER_HOST``, ``STREAM_MANAGER_PORT``);
everything else is ``MANAGER_<FIELD>`` (e.g. ``MANAGER_REDIS_URL``, ``MANAGER_DEVICES=cpu,gpu``).
"""

from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.core.logs import LogFormat
from services.core.tasks import DEFAULT_DEVICES


class ManagerSettings(BaseSettings):
    # validate_by_name: code (tests) may pass host=/port=; the environment is read only through the
    # aliases below, never through bare HOST / PORT variables that containers often set for others.
    model_config = SettingsConfigDict(env_prefix="MANAGER_", extra="ignore", validate_by_name=True)

    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("STREAM_MANAGER_HOST", "MANAGER_HOST"))
    # 0 binds a free port (tests); the bound one is logged and exposed by the server.
    port: int = Field(default=7070, ge=0, le=65535,
                      validation_alias=AliasChoices("STREAM_MANAGER_PORT", "MANAGER_PORT"))
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Bounds on every Redis call, so a request during a Redis outage is answered "Redis is
    # unavailable" within seconds, never hangs. Blocking waits (a task's reply) are cut into BLPOPs
    # shorter than the socket timeout (services.manager.control.wait_reply).
    redis_socket_timeout: float = Field(default=5.0, gt=0)
    redis_connect_timeout: float = Field(default=2.0, gt=0)
    max_frame_size: int = Field(default=1024 * 1024, ge=1)
    # The reference closes after one request (5 s socket timeout); we keep a connection for
    # several requests and close it once it has been idle this long.
    idle_timeout: float = Field(default=30.0, gt=0)
    command_timeout: float = Field(default=5.0, gt=0)
    init_timeout: float = Field(default=30.0, gt=0)  # model load + opening the sources
    default_device: str = "cpu"
    devices: Annotated[tuple[str, ...], NoDecode] = DEFAULT_DEVICES
    workflows_directory: Path | None = None  # named workflows: <dir>/<workspace>/<workflow_id>.json
    finished_ttl: int = Field(default=600, ge=1)  # seconds an ended pipeline's last status stays readable
    reaper_interval: float = Field(default=1.0, gt=0)
    # STATUS of a running pipeline is answered from the report its task stores every second (and at
    # once after each state change) while that copy is younger than this; otherwise the task is asked
    # over pub/sub. 0 = always ask the task. Reads then cost one Redis round trip however busy the
    # workers are (docs/benchmarks.md). Ages compare the worker's and the manager's clocks.
    status_max_age: float = Field(default=2.0, ge=0)
    # A running pipeline is lost when its heartbeat key (TTL WORKER_HEARTBEAT_TTL, 3 s, refreshed
    # every second) has been missing this long: detection within TTL + grace + reaper_interval.
    heartbeat_grace: float = Field(default=1.0, ge=0)
    # After the reaper could not reach Redis, heartbeats get this long from its first successful
    # sweep before heartbeat_grace starts counting: tasks could not beat during the outage (the keys
    # may have expired meanwhile) and need a tick after they reconnect (their client's retry backoff,
    # at most about 1 s, plus the 1 s tick). A task that really died during an outage is therefore
    # declared lost within outage_grace + heartbeat_grace + reaper_interval of Redis coming back.
    outage_grace: float = Field(default=5.0, ge=0)
    # A lost pipeline is re-dispatched at once after its first crash, then after initial * 2^(n-1)
    # seconds for its n-th (at most max); after max_restarts crashes it is FAILED. A worker
    # shutdown hand-off is immediate and not counted as a crash.
    max_restarts: int = Field(default=5, ge=0)
    restart_backoff_initial: float = Field(default=1.0, ge=0)
    restart_backoff_max: float = Field(default=30.0, ge=0)
    # Admission of INIT (services.manager.admission): a worker of the queue needs a free slot, its host
    # this much available RAM, and, when it has a RAM budget (WORKER_MAX_RAM_MB), room in it for one
    # more pipeline: the largest it has run, or this estimate before it ran any (a YOLOv3-tiny CPU
    # pipeline measured about 290 MB RSS).
    min_free_ram_mb: int = Field(default=256, ge=0)
    pipeline_ram_estimate_mb: int = Field(default=512, ge=0)
    # Prometheus metrics of the control plane (services.manager.metrics) on http://HOST:PORT/metrics.
    # Unset: not served (0 binds a free port, logged). Loopback by default, like the TCP endpoint.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # Optional shared token: when set, every request must carry it in its "token" field.
    auth_token: SecretStr | None = None
    log_level: str = "INFO"
    # "text" or "json" (one object per line); VSIM_LOG_FORMAT sets every service's at once.
    log_format: LogFormat = Field(default="text",
                                  validation_alias=AliasChoices("MANAGER_LOG_FORMAT", "VSIM_LOG_FORMAT"))

    @field_validator("auth_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # Compose files pass MANAGER_AUTH_TOKEN="" when no token is configured: that means "no auth",
        # not "the empty token" (which would refuse every client that sends one).
        return None if value == "" else value

    @field_validator("devices", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def handler_timeout(self) -> float:
        """The longest any non-init request may take (its own waits plus Redis round trips)."""
        return self.command_timeout + 5.0

    @property
    def init_handler_timeout(self) -> float:
        return self.init_timeout + 10.0
