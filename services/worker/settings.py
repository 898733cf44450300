"""The worker's settings, read once from the environment (prefix ``WORKER_``) in ``__main__``."""

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.core.logs import LogFormat
from services.core.networks import LOOPBACK_NETWORKS, NetworkPolicy, normalise_entries
from services.core.settings_values import comma_list
from services.core.workflows.catalogue.sinks import S3_REGION
from services.core.workflows.secrets import is_variable_name
from services.infra.redis_connect import RedisTarget, parse_redis_url

Device = Literal["cpu", "gpu", "jetson"]


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORKER_", extra="ignore", validate_by_name=True)

    redis_url: str = "redis://127.0.0.1:6379/0"
    model_repository: Path = Path("data/models")
    default_model_id: str = "yolov3-tiny/coco-416"
    device: Device = "cpu"
    # How a pipeline uses the cores: ``inference_workers`` rounds in session.run at once, each with
    # ``intra_op_threads`` onnxruntime threads. 0 = automatic: on CPU, (cores / concurrency) workers
    # of one thread each, which measured faster than one multi-threaded run (docs/benchmarks.md).
    inference_workers: int = Field(default=0, ge=0)
    intra_op_threads: int = Field(default=0, ge=0)
    # FFmpeg's decoding threads per video source; 0 = FFmpeg's automatic count (frame and slice
    # threads, one per core), as before this setting. One thread decodes the sample video for 0.63 ms
    # of CPU a frame against 0.81 with the automatic threads (1080p H.264: 3.92 against 4.30 ms;
    # docs/benchmarks.md, "Decode cost and max_fps") and adds no frame-thread delay: on a host shared
    # by many streams, 1 saves CPU; a single stream too heavy for one core needs more.
    decode_threads: int = Field(default=0, ge=0)
    # Reconnect backoff of live sources (seconds).
    reconnect_initial_delay: float = Field(default=0.5, gt=0)
    reconnect_max_delay: float = Field(default=30.0, gt=0)
    # The Celery worker started by ``python -m services.worker`` (command-line flags override these).
    queues: str = ""  # comma-separated queue names; empty: the queue of ``device``
    concurrency: int = Field(default=1, ge=1)  # pipelines at once (prefork processes)
    hostname: str | None = None  # Celery node name; None: celery@<host>
    log_level: str = "INFO"
    # "text" or "json" (one object per line, with the pipeline_id on every line a pipeline's process
    # writes); VSIM_LOG_FORMAT sets every service's at once.
    log_format: LogFormat = Field(default="text", validation_alias=AliasChoices("WORKER_LOG_FORMAT", "VSIM_LOG_FORMAT"))
    # RAM budget in MB of this worker's pipelines together, published in its registration: the
    # manager admits an INIT only while the pipelines' RSS plus the largest one seen fits. Also read
    # from the reference's name STREAM_MANAGER_MAX_RAM_MB. Unset: no budget (the host floor applies).
    max_ram_mb: int | None = Field(default=None, ge=1,
                                   validation_alias=AliasChoices("WORKER_MAX_RAM_MB", "STREAM_MANAGER_MAX_RAM_MB"))
    # Seconds a pipeline's heartbeat key outlives its last refresh (refreshed every second); the
    # manager declares the task lost MANAGER_HEARTBEAT_GRACE seconds after the key is gone.
    heartbeat_ttl: int = Field(default=3, ge=2)
    # The broker's visibility timeout (seconds). Tasks are acknowledged on receipt (see
    # services.core.tasks), so a pipeline running longer than this is never delivered twice.
    visibility_timeout: int = Field(default=3600, ge=1)
    # Timeouts of the task's Redis client, so an unreachable Redis fails a call instead of hanging it.
    redis_socket_timeout: float = Field(default=5.0, gt=0)
    redis_connect_timeout: float = Field(default=2.0, gt=0)
    # Results each pipeline remembers after Redis acknowledged them, to write them again (same ids) when a
    # failover's promoted replica (or a Redis restarted empty) lacks them (services.worker.engine.sinks.redis_stream).
    results_replay_window: int = Field(default=256, ge=0)

    # Seconds between two annotated preview frames a pipeline publishes for the dashboard (a JPEG in
    # Redis, drawn off the inference path); 0 disables previews.
    preview_interval: float = Field(default=1.0, ge=0)

    # Workflows: the directory local_file_sink blocks may write under (None: those blocks fail with a
    # clear error), and how many fire-and-forget deliveries (webhook, email, Slack, SMS) may wait per pipeline.
    workflow_file_root: Path | None = None
    workflow_max_pending_deliveries: int = Field(default=64, ge=1)
    # The Slack Web API slack_notification blocks call and the Twilio REST API twilio_sms_notification blocks
    # call (others for a compatible gateway or a test).
    workflow_slack_api_url: str = "https://slack.com/api"
    workflow_twilio_api_url: str = "https://api.twilio.com"
    # The S3 endpoint s3_sink blocks upload to, path style (<url>/<bucket>/<key>): an S3-compatible store's (MinIO,
    # Ceph, ...) or a test's; empty: AWS's, https://s3.<region>.amazonaws.com. The region when a step names none.
    workflow_s3_endpoint_url: str = ""
    workflow_s3_region: str = "us-east-1"
    # The hosted LLM APIs the open_ai, anthropic_claude and google_gemini blocks call, and OpenRouter's (the
    # llama_3_2_vision, llama_vision, openrouter, kimi_openrouter, qwen3_*_openrouter and meta_vlm blocks; others for a
    # compatible gateway or a test; the workflow never chooses), and the seconds one of their requests may take
    # before the step fails on that frame.
    workflow_openai_api_url: str = "https://api.openai.com/v1"
    workflow_anthropic_api_url: str = "https://api.anthropic.com"
    workflow_gemini_api_url: str = "https://generativelanguage.googleapis.com"
    workflow_openrouter_api_url: str = "https://openrouter.ai/api/v1"
    # xAI's (the spacexai block: its Responses API, <url>/responses), within the same timeout.
    workflow_xai_api_url: str = "https://api.x.ai/v1"
    # Google Cloud Vision's, which google_vision_ocr blocks call (within the same timeout).
    workflow_google_vision_api_url: str = "https://vision.googleapis.com"
    workflow_llm_api_timeout: float = Field(default=60.0, gt=0, le=600)
    # Hosts webhook, email, Slack and Twilio sinks may reach, comma-separated (empty: any name). A worker on a private
    # network can keep users' workflows from calling its neighbours.
    workflow_allowed_hosts: str = ""
    # Networks those sinks may connect to (services.core.networks): CIDRs or addresses, comma-separated, and
    # "public" for every globally routable address. Every address a host resolves to must be allowed, checked
    # on each connection (redirects too). Loopback only by default; empty: none.
    workflow_allowed_networks: Annotated[tuple[str, ...], NoDecode] = LOOPBACK_NETWORKS
    # Where a pipeline's udp_sink may send results, checked when the pipeline starts (the manager checked
    # the INIT against MANAGER_UDP_SINK_ALLOWED_NETWORKS; this worker's resolver and rules decide again).
    udp_sink_allowed_networks: Annotated[tuple[str, ...], NoDecode] = LOOPBACK_NETWORKS
    # Environment variables workflows' environment_secrets_store blocks may read, comma-separated names (empty:
    # none), e.g. "SLACK_TOKEN,SMTP_PASSWORD". Their values are taken when the worker starts; a workflow naming
    # any other variable fails that step. The worker's own settings (WORKER_*) may not be listed.
    workflow_secrets: Annotated[tuple[str, ...], NoDecode] = ()
    _workflow_secret_values: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    # The per-device inference service (services.worker.inference): one process beside the worker that
    # loads each model once and batches the frames of all its pipelines. false: every pipeline loads
    # its own models in its own process (as before the service; kept for comparison and isolation).
    inference_service: bool = True
    # session.run calls at once in the service (0: one per core on CPU, 2 on accelerators) and the
    # most frames in one batch; batches form by themselves when the runners are busy.
    inference_runners: int = Field(default=0, ge=0)
    inference_max_batch: int = Field(default=8, ge=1, le=64)
    # While only live pipelines (max_staleness) use the service, it runs one batch at a time with one
    # thread per core instead of single-threaded runs side by side: fresher results, fewer frames. On
    # CPU with the automatic sizing only (services.worker.inference.service, "live-only load").
    inference_live_latency: bool = True
    # Rounds one pipeline keeps at the service at once (0: runners + 1, so one pipeline alone keeps
    # every runner busy while its next round travels).
    inference_in_flight: int = Field(default=0, ge=0)
    # Model ids the service loads when it starts, comma-separated, so the first INIT does not wait
    # for a model load (None: the default model; "": none).
    preload_models: str | None = None
    # Where TensorRT keeps the engines it builds (a volume: building one takes minutes on a Jetson).
    tensorrt_cache: Path | None = None

    # WebRTC pipelines (services.worker.webrtc). ICE host candidates: these addresses only (comma-separated;
    # empty: every interface's, loopback when there is no other) on UDP ports of ``webrtc_port_range``
    # ("50000-50099"; empty: any port), the range the compose files publish. A STUN/TURN server for peers
    # behind NAT when the request names none (``webrtc_turn_config``); empty: host candidates only.
    webrtc_host_addresses: str = ""
    webrtc_port_range: str = Field(default="", pattern=r"^(\d{1,5}-\d{1,5})?$")
    # The address peers reach the host candidates at, when it is not the worker's own (a container whose
    # UDP range is published on the host: the host's address). Empty: the candidates' own addresses.
    webrtc_advertised_address: str = ""
    webrtc_turn_urls: str = ""
    webrtc_turn_username: str | None = None
    webrtc_turn_credential: SecretStr | None = None
    # Seconds from the offer to the answer (ICE gathering included); past it the request fails cleanly.
    webrtc_negotiation_timeout: float = Field(default=10.0, gt=0)

    @field_validator("workflow_slack_api_url", "workflow_twilio_api_url", "workflow_openai_api_url",
                     "workflow_anthropic_api_url", "workflow_gemini_api_url", "workflow_google_vision_api_url",
                     "workflow_openrouter_api_url", "workflow_xai_api_url")
    @classmethod
    def _api_url(cls, value: str, info: ValidationInfo) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            setting = f"WORKER_{str(info.field_name).upper()}"
            raise ValueError(f"{setting} must be an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("workflow_s3_endpoint_url")
    @classmethod
    def _s3_endpoint(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc
                      or parts.query or parts.fragment):
            raise ValueError("WORKER_WORKFLOW_S3_ENDPOINT_URL must be an http:// or https:// URL with a host (no "
                             f"credentials, query or fragment), or empty for AWS's; got {value!r}")
        return value.rstrip("/")

    @field_validator("workflow_s3_region")
    @classmethod
    def _s3_region(cls, value: str) -> str:
        if S3_REGION.fullmatch(value) is None:
            raise ValueError(f"WORKER_WORKFLOW_S3_REGION must be a region name such as 'us-east-1', got {value!r}")
        return value

    @field_validator("workflow_secrets", mode="before")
    @classmethod
    def _secret_names(cls, value: Any) -> Any:
        names = comma_list(value)
        for name in names if isinstance(names, tuple | list) else ():
            if not is_variable_name(name):
                raise ValueError(f"WORKER_WORKFLOW_SECRETS: {name!r} is not an environment variable name")
            if name.upper().startswith("WORKER_"):
                raise ValueError(f"WORKER_WORKFLOW_SECRETS: {name!r} is one of the worker's own settings")
        return names

    def model_post_init(self, context: Any) -> None:
        """Takes the allowed secrets' values from the environment, once, as the settings themselves are read."""
        self._workflow_secret_values = {name: SecretStr(os.environ[name])
                                        for name in self.workflow_secrets if name in os.environ}

    def workflow_secret_values(self) -> dict[str, str]:
        """The variables of ``WORKER_WORKFLOW_SECRETS`` that were set when these settings were read, by name."""
        return {name: value.get_secret_value() for name, value in self._workflow_secret_values.items()}

    @field_validator("workflow_allowed_networks", "udp_sink_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        return normalise_entries(value)

    def redis_target(self) -> RedisTarget:
        """``WORKER_REDIS_URL`` parsed (plain or Sentinel); raises ``RedisUrlError`` naming the setting."""
        return parse_redis_url(self.redis_url, "WORKER_REDIS_URL")

    def workflow_networks(self) -> NetworkPolicy:
        return NetworkPolicy.parse(self.workflow_allowed_networks, "WORKER_WORKFLOW_ALLOWED_NETWORKS")

    def udp_sink_networks(self) -> NetworkPolicy:
        return NetworkPolicy.parse(self.udp_sink_allowed_networks, "WORKER_UDP_SINK_ALLOWED_NETWORKS")

    def webrtc_ports(self) -> tuple[int, int] | None:
        if not self.webrtc_port_range:
            return None
        low, high = (int(part) for part in self.webrtc_port_range.split("-"))
        if not 1024 <= low <= high <= 65535:
            raise ValueError(f"WORKER_WEBRTC_PORT_RANGE {self.webrtc_port_range!r}: want LOW-HIGH within 1024-65535")
        return low, high

    def preload(self) -> tuple[str, ...]:
        listed = self.default_model_id if self.preload_models is None else self.preload_models
        return tuple(comma_list(listed))

    def service_sizing(self, cores: int) -> tuple[int, int]:
        """(runners, intra-op threads per run) of the inference service on a host with ``cores`` cores."""
        if self.device != "cpu":
            return self.inference_runners or 2, self.intra_op_threads
        return self.inference_runners or max(1, cores), self.intra_op_threads or 1

    def service_live_threads(self, cores: int) -> int:
        """Intra-op threads of the service's live-only session (0: none, the runners stay side by side)."""
        automatic = self.inference_runners == 0 and self.intra_op_threads == 0
        return cores if self.device == "cpu" and automatic and cores > 1 and self.inference_live_latency else 0

    def pipeline_in_flight(self, cores: int) -> int:
        """Rounds one pipeline keeps at the inference service at once."""
        return self.inference_in_flight or self.service_sizing(cores)[0] + 1

    def sink_hosts(self) -> tuple[str, ...]:
        return tuple(comma_list(self.workflow_allowed_hosts))

    def inference_sizing(self, cores: int) -> tuple[int, int]:
        """(inference workers, intra-op threads) for one pipeline on a host with ``cores`` cores."""
        if self.device != "cpu":  # accelerators: one run at a time, onnxruntime's own CPU threads
            return max(1, self.inference_workers), self.intra_op_threads
        share = max(1, cores // self.concurrency)
        if self.inference_workers == 0 and self.intra_op_threads == 0:
            return share, 1
        return max(1, self.inference_workers), self.intra_op_threads or 1
