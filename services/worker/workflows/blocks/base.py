"""The contract between the executor and a block implementation.

A block is constructed once per (workflow step, video source), so whatever it keeps between frames
(a tracker, a counter, a cooldown) is per source. ``run`` gets the step's fields by their canonical
names with every selector already resolved, and returns ``{output name: value}`` for the outputs the
catalogue declares, or a :class:`FlowDecision` for flow-control blocks. Raising fails this step on
this frame only: the executor records the error and feeds ``None`` to whatever reads its outputs.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from services.core.networks import NetworkPolicy
from services.core.workflows.plan import PlanStep
from services.worker.workflows.values import VideoMetadata


@dataclass(frozen=True, slots=True)
class FlowDecision:
    """A flow-control block's verdict for this frame: let the steps it gates run, or not.

    ``only``: when proceeding, just these of them (switch_case's matched branch); None: all of them.
    """

    proceed: bool
    only: frozenset[str] | None = None


NETWORKS_SETTING = "WORKER_WORKFLOW_ALLOWED_NETWORKS"


@dataclass(frozen=True, slots=True)
class SinkSettings:
    """Where sinks may write and how long they may take (set by the worker's operator)."""

    # local_file_sink writes only under this directory (None: the block fails with a clear error).
    file_root: Path | None = None
    # Hosts SMTP / webhooks may reach; empty = any name.
    allowed_hosts: tuple[str, ...] = ()
    # Networks they may connect to: every address a host resolves to, checked at each connection
    # (services.core.networks). Loopback only unless the operator allows more.
    allowed_networks: NetworkPolicy = field(default_factory=lambda: NetworkPolicy.loopback(NETWORKS_SETTING))
    # The Slack Web API's base URL (slack_notification): its methods are <base>/chat.postMessage, ...
    slack_api_url: str = "https://slack.com/api"
    # The Twilio REST API's (twilio_sms_notification): <base>/2010-04-01/Accounts/<sid>/Messages.json
    twilio_api_url: str = "https://api.twilio.com"
    # The S3 endpoint s3_sink uploads to (path style: <endpoint>/<bucket>/<key>): an S3-compatible store's (MinIO,
    # Ceph, ...); "" for AWS's regional endpoint, https://s3.<region>.amazonaws.com. The region a step gives
    # (aws_region), else this one, names the endpoint and signs the requests.
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    # The hosted LLM APIs the open_ai, anthropic_claude and google_gemini blocks call (their paths below these:
    # <openai>/chat/completions, <anthropic>/v1/messages, <gemini>/v1beta/models/<model>:generateContent), and how
    # long one of their requests may take before the step fails on that frame.
    openai_api_url: str = "https://api.openai.com/v1"
    anthropic_api_url: str = "https://api.anthropic.com"
    gemini_api_url: str = "https://generativelanguage.googleapis.com"
    # OpenRouter's (OpenAI's chat completions: <openrouter>/chat/completions), for the blocks it serves.
    openrouter_api_url: str = "https://openrouter.ai/api/v1"
    # xAI's (its Responses API: <xai>/responses), for the spacexai block.
    xai_api_url: str = "https://api.x.ai/v1"
    # Google Cloud Vision's (google_vision_ocr: <base>/v1/images:annotate), within the same timeout.
    google_vision_api_url: str = "https://vision.googleapis.com"
    llm_api_timeout: float = 60.0


SECRETS_SETTING = "WORKER_WORKFLOW_SECRETS"


@dataclass(frozen=True, slots=True)
class EnvironmentSecrets:
    """The worker's environment variables its operator lets workflows read (``WORKER_WORKFLOW_SECRETS``), and
    the values of those that were set when the worker started (environment_secrets_store)."""

    allowed: frozenset[str] = frozenset()
    values: Mapping[str, str] = field(default_factory=dict, repr=False)


class ModelRunner(Protocol):
    """How blocks ask for model predictions (implemented by ``services.worker.workflows.models``)."""

    def detect(self, model_id: str, image: Any, params: Mapping[str, Any]) -> Any: ...

    def classify(self, model_id: str, image: Any, confidence: float) -> Any: ...

    def classify_multi_label(self, model_id: str, image: Any, confidence: float) -> Any: ...

    def ocr(self, text_detection: str, text_recognition: str) -> Any: ...


class Background(Protocol):
    """Runs fire-and-forget work off the frame path; False when too much is already waiting."""

    def submit(self, work: Callable[[], None]) -> bool: ...


@dataclass(slots=True)
class BlockEnvironment:
    """What a block may use besides its inputs."""

    source_id: int
    models: ModelRunner
    background: Background
    sinks: SinkSettings = field(default_factory=SinkSettings)
    clock: Callable[[], float] = time.time  # wall clock (cooldowns, rate limits, csv timestamps)
    # Strings that must never reach logs, status or metrics (api keys, passwords in sink fields).
    secrets: list[str] = field(default_factory=list)
    environment_secrets: EnvironmentSecrets = field(default_factory=EnvironmentSecrets)
    # State the steps of one workflow share on this source, by the name of the blocks that keep it there
    # (cache_set and cache_get's key-value cache).
    shared: dict[str, Any] = field(default_factory=dict)
    # The video metadata of the frame being run (the executor sets it before each frame's steps): for the blocks
    # that make a new image of no input image (qr_code_generator).
    video: VideoMetadata | None = None


class Block(Protocol):
    # ``run(**inputs)``: each block names its own fields, so the protocol only asks for a callable.
    @property
    def run(self) -> Callable[..., Any]: ...


BlockFactory = Callable[[PlanStep, BlockEnvironment], Block]
