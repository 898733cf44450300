"""The manager's settings, read once from the environment in ``__main__`` and passed down.

The reference's names are kept where they exist (``STREAM_MANAGER_HOST``, ``STREAM_MANAGER_PORT``);
everything else is ``MANAGER_<FIELD>`` (e.g. ``MANAGER_REDIS_URL``, ``MANAGER_DEVICES=cpu,gpu``).
"""

from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.core.logs import LogFormat
from services.core.networks import LOOPBACK_NETWORKS, normalise_entries
from services.core.plan import MAX_DECODING_BUFFER_SIZE, MAX_PREDICTIONS_QUEUE_SIZE, MAX_RESULTS_BUFFER_SIZE
from services.core.references import DEFAULT_ALLOWED_SCHEMES, DEFAULT_MAX_SOURCES
from services.core.settings_values import comma_list, is_loopback
from services.core.tasks import DEFAULT_DEVICES
from services.infra.event_loop import EventLoopChoice
from services.infra.redis_connect import RedisTarget, parse_redis_url


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
    # Limits of the TCP endpoint (services.manager.server); each refusal names its setting.
    # Requests per second on one connection (a token bucket of max_request_burst; 0 = no limit) and
    # connections open at once (0 = no limit; the load test opens 1000).
    max_requests_per_second: float = Field(default=100.0, ge=0)
    max_request_burst: int = Field(default=200, ge=1)
    max_connections: int = Field(default=1024, ge=0)
    # Live pipelines per device queue (0 = no limit), checked by INIT admission before anything is
    # written. Pipelines per worker are the worker's concurrency (WORKER_CONCURRENCY), also checked there.
    max_pipelines_per_device: int = Field(default=0, ge=0)
    # The largest buffers an INIT or WEBRTC request may ask for; above, it is refused (invalid_payload,
    # naming the field and the setting) before anything is written. Each is at most the ceiling every
    # worker enforces again (services.core.plan). Decoded frames per source (64 1080p frames: 400 MiB),
    # inference rounds queued for a sink, entries of the pipeline's results stream in Redis.
    max_decoding_buffer_size: int = Field(default=256, ge=1, le=MAX_DECODING_BUFFER_SIZE)
    max_predictions_queue_size: int = Field(default=4096, ge=1, le=MAX_PREDICTIONS_QUEUE_SIZE)
    max_results_buffer_size: int = Field(default=MAX_RESULTS_BUFFER_SIZE, ge=1, le=MAX_RESULTS_BUFFER_SIZE)
    # TLS of the TCP endpoint: a PEM certificate (chain) and its key; with a client CA, clients must
    # present a certificate it signed (mutual TLS).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    # Binding an address other than loopback needs MANAGER_AUTH_TOKEN (or mutual TLS), unless this is set.
    allow_insecure_bind: bool = False
    # As the reference does, a connection is closed after its reply unless the request asked
    # "keep_alive": true (services.manager.server); false keeps every connection open until its client
    # closes it (or idle_timeout).
    close_after_reply: bool = True
    # The reference has a 5 s socket timeout; a connection kept alive is closed once it has been idle this long.
    idle_timeout: float = Field(default=30.0, gt=0)
    # Longest a reply may take to be written to a client (its socket buffers full: a client that stopped
    # reading); past it the connection is dropped, so such a client cannot hold a server task.
    write_timeout: float = Field(default=10.0, gt=0)
    command_timeout: float = Field(default=5.0, gt=0)
    init_timeout: float = Field(default=30.0, gt=0)  # model load + opening the sources
    # Redis connections: requests share ``redis_pool_size``; the waits for a task's reply (INIT, control
    # commands: a BLPOP each, seconds long) have their own ``redis_blocking_pool_size``, and the reaper its
    # own two, so that neither can starve the other nor requests (a request waits for a free connection).
    redis_pool_size: int = Field(default=100, ge=1)
    redis_blocking_pool_size: int = Field(default=200, ge=1)
    default_device: str = "cpu"
    devices: Annotated[tuple[str, ...], NoDecode] = DEFAULT_DEVICES
    # Named workflows live in Redis (put_workflow); this directory, when set, is a read-only fallback:
    # <dir>/<workspace>/<workflow_id>.json.
    workflows_directory: Path | None = None
    # Largest definition put_workflow stores (its compact JSON, in bytes). It must also fit in a request
    # frame (max_frame_size) and the HTTP API's body limit (API_MAX_BODY_BYTES), both 1 MiB by default.
    max_workflow_bytes: int = Field(default=512 * 1024, ge=1)
    finished_ttl: int = Field(default=600, ge=1)  # seconds an ended pipeline's last status stays readable
    reaper_interval: float = Field(default=1.0, gt=0)
    # Several managers may share one Redis; only the holder of the reaper lease (a Redis key with this
    # TTL, renewed each sweep) supervises pipelines (services.manager.lease). Another manager takes over
    # within reaper_lease_ttl + reaper_interval of the holder's death, within reaper_interval of its stop.
    reaper_lease_ttl: float = Field(default=5.0, gt=0)
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
    # shutdown hand-off, or a dispatch no worker claimed within init_timeout, is re-dispatched at
    # once and not counted as a crash.
    max_restarts: int = Field(default=5, ge=0)
    restart_backoff_initial: float = Field(default=1.0, ge=0)
    restart_backoff_max: float = Field(default=30.0, ge=0)
    # A pipeline whose task is lost twice in a row the same way (the same reason, in the same state)
    # each time less than this long after it was dispatched is FAILED instead of being sent to a third
    # worker: a spec that kills the process running it (services.manager.reaper). 0 = off.
    crash_loop_window: float = Field(default=60.0, ge=0)
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
    # Video references INIT accepts (services.core.references): URL schemes, directories files must lie
    # under (relative ones are taken from the manager's working directory; ".." and symlinks are resolved
    # before the check; empty = no files), local camera indices (none by default: a camera is a device
    # of the worker's host), and sources per pipeline.
    allowed_schemes: Annotated[tuple[str, ...], NoDecode] = DEFAULT_ALLOWED_SCHEMES
    file_roots: Annotated[tuple[Path, ...], NoDecode] = (Path("data"),)
    allowed_cameras: Annotated[tuple[int, ...], NoDecode] = ()
    max_sources: int = Field(default=DEFAULT_MAX_SOURCES, ge=1)
    # Where an INIT's udp_sink may send results (services.core.networks): CIDRs or addresses, comma-separated,
    # and "public" for every globally routable address; every address the host resolves to must be allowed.
    # The worker checks again against WORKER_UDP_SINK_ALLOWED_NETWORKS.
    udp_sink_allowed_networks: Annotated[tuple[str, ...], NoDecode] = LOOPBACK_NETWORKS
    # "auto" (uvloop when installed, else asyncio), "uvloop" or "asyncio" (services/infra/event_loop.py).
    event_loop: EventLoopChoice = "auto"
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

    @field_validator("tls_cert_file", "tls_key_file", "tls_client_ca_file", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _tls_files_together(self) -> "ManagerSettings":
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("MANAGER_TLS_CERT_FILE and MANAGER_TLS_KEY_FILE must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("MANAGER_TLS_CLIENT_CA_FILE needs MANAGER_TLS_CERT_FILE and MANAGER_TLS_KEY_FILE")
        return self

    @model_validator(mode="after")
    def _lease_outlives_a_sweep(self) -> "ManagerSettings":
        if self.reaper_lease_ttl < 2 * self.reaper_interval:
            raise ValueError(f"MANAGER_REAPER_LEASE_TTL ({self.reaper_lease_ttl:g} s) must be at least twice "
                             f"MANAGER_REAPER_INTERVAL ({self.reaper_interval:g} s): the lease is renewed each sweep")
        return self

    @field_validator("allowed_schemes", mode="before")
    @classmethod
    def _schemes(cls, value: Any) -> Any:
        return tuple(str(part).strip().lower() for part in comma_list(value) if str(part).strip())

    @field_validator("file_roots", "allowed_cameras", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        return comma_list(value)

    @field_validator("udp_sink_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        try:
            return normalise_entries(value)
        except ValueError as exc:
            raise ValueError(f"MANAGER_UDP_SINK_ALLOWED_NETWORKS: {exc}") from None

    @field_validator("allowed_cameras")
    @classmethod
    def _non_negative(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(index < 0 for index in value):
            raise ValueError("camera indices must be >= 0")
        return value

    @field_validator("devices", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return comma_list(value)

    @property
    def handler_timeout(self) -> float:
        """The longest any non-init request may take (its own waits plus Redis round trips)."""
        return self.command_timeout + 5.0

    @property
    def init_handler_timeout(self) -> float:
        return self.init_timeout + 10.0

    def redis_target(self) -> RedisTarget:
        """``MANAGER_REDIS_URL`` parsed (plain or Sentinel); raises ``RedisUrlError`` naming the setting."""
        return parse_redis_url(self.redis_url, "MANAGER_REDIS_URL")


def insecure_bind(settings: ManagerSettings) -> str | None:
    """Why binding ``settings.host`` would expose an unauthenticated endpoint (None: it would not).

    Any address other than loopback needs a shared token or mutual TLS; ``MANAGER_ALLOW_INSECURE_BIND``
    overrides (the caller then warns), e.g. inside a container whose port is published on loopback.
    """
    if is_loopback(settings.host) or settings.auth_token is not None or settings.tls_client_ca_file is not None:
        return None
    return (f"refusing to bind {settings.host}:{settings.port} without authentication: set MANAGER_AUTH_TOKEN "
            "(or mutual TLS with MANAGER_TLS_CLIENT_CA_FILE), bind a loopback address (STREAM_MANAGER_HOST="
            "127.0.0.1), or set MANAGER_ALLOW_INSECURE_BIND=1 to accept unauthenticated clients from the network")
