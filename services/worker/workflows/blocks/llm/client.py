"""What the hosted LLM / VLM blocks share: checking their inputs on each frame, the frame as a base64 JPEG, and one
JSON POST to the provider's API at the operator's address.

Each call runs in the graph, synchronously, as the reference's do: a frame waits for the answer (seconds), at most
``SinkSettings.llm_api_timeout``. Whatever goes wrong (a refused key, a rate limit, a server error, a timeout, an
answer that is not the API's JSON) raises :class:`ProviderError` naming the provider and the HTTP status: the
executor fails this step on this frame only, and the next frame calls again.

The API key goes only to the operator's address, in the provider's header. It is registered as a secret (the
executor and the logs redact it) as the block is built when it is a literal and on each frame when a selector
gives it, and it is removed from every message this module raises, whatever the provider echoes back. Connections
are checked as the sinks' are (``WORKER_WORKFLOW_ALLOWED_HOSTS`` / ``_NETWORKS``): a hosted API is outbound
traffic, unreachable until the operator allows it.
"""

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import httpx
import numpy as np

from services.core.redaction import redact_text
from services.core.workflows.blocks import is_int, is_number
from services.core.workflows.catalogue import llm as catalogue
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import BlockEnvironment, SinkSettings
from services.worker.workflows.blocks.sinks import credentials
from services.worker.workflows.blocks.sinks.notification import check_destination
from services.worker.workflows.blocks.sinks.webhook_request import OperatorApi
from services.worker.workflows.values import WorkflowImage

JPEG_QUALITY = 90  # the reference's encode_image_to_jpeg_bytes
_DETAIL_CHARS = 300  # of the provider's own error message, in ours


class ProviderError(RuntimeError):
    """A hosted model's call failed (the message names the provider, never the key). ``status``: the HTTP status
    of an error answer (None: no such answer, e.g. a timeout)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def rejects_reasoning(error: ProviderError, markers: tuple[str, ...]) -> bool:
    """Whether the API refused the request's ``reasoning`` (a client error, HTTP 4xx, whose message names reasoning
    and one of ``markers``): the reference then asks once more without it. Never for a timeout or a server error,
    where a second, billed request would be asked for a passing problem."""
    message = str(error).lower()
    return error.status is not None and 400 <= error.status < 500 and "reasoning" in message and any(
        marker in message for marker in markers)


@dataclass(frozen=True, slots=True)
class ApiRequest:
    path: str  # below the operator's base URL
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class TaskInputs:
    """The fields every task reads, checked (a selector's value too)."""

    task_type: str
    prompt: str | None
    classes: list[str] | None
    output_structure: dict[str, str] | None


def jpeg_base64(image: Any, max_size: int | None = None) -> str:
    """The image as a base64 JPEG (quality 90), scaled down to fit ``max_size`` x ``max_size`` when given."""
    if not isinstance(image, WorkflowImage):
        raise ValueError(f"images must be an image, got {type(image).__name__}")
    pixels: np.ndarray = image.image
    height, width = pixels.shape[:2]
    if max_size is not None and (width > max_size or height > max_size):
        scale = min(max_size / width, max_size / height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("the image cannot be encoded as JPEG")
    return base64.b64encode(encoded.tobytes()).decode("ascii")


def optional_number(value: Any, name: str, maximum: float) -> float | None:
    if value is None:
        return None
    if not is_number(value) or not 0 <= value <= maximum:
        raise ValueError(f"{name} must be a number from 0.0 to {maximum:g}, got {value!r}")
    return float(value)


def positive_int(value: Any, name: str) -> int:
    if not is_int(value) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {type(value).__name__}")
    return value


class HostedModelBlock:
    """A hosted model block: its inputs checked, one request per image, ``output`` the model's text and ``classes``
    the step's classes, as the reference's blocks give them."""

    provider: ClassVar[str] = "hosted model"  # "OpenAI": in every message
    url_setting: ClassVar[str] = ""  # the SinkSettings field of its base URL
    # A batch's items (crops) are asked this field's number at a time (services.worker.workflows.executor).
    concurrency_field: ClassVar[str | None] = "max_concurrent_requests"

    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._env = env
        self._register(step.params.get("api_key"))

    def _register(self, key: Any) -> None:
        if isinstance(key, str) and not key.startswith("$steps."):
            credentials.register(self._env, [key])

    def _key(self, api_key: Any) -> str:
        key = text(api_key, "api_key")
        self._register(key)
        if catalogue.is_proxy_key(key):
            raise ValueError(catalogue.proxy_key_refusal(self.provider))
        return key

    def _task(self, task_type: str, tasks: tuple[str, ...], prompt: Any, classes: Any,
              output_structure: Any) -> TaskInputs:
        if task_type not in tasks:
            raise ValueError(f"task_type {task_type!r} is not one of {', '.join(tasks)}")
        if task_type in catalogue.TASKS_REQUIRING_PROMPT:
            prompt = text(prompt, "prompt")
        elif prompt is not None and not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
        if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
            raise ValueError(f"classes must be a list of class names (strings), got {classes!r}")
        if task_type in catalogue.TASKS_REQUIRING_CLASSES and not classes:
            raise ValueError(f"classes must name at least one class for task_type {task_type!r}")
        if task_type in catalogue.TASKS_REQUIRING_OUTPUT_STRUCTURE and output_structure is None:
            raise ValueError(f"output_structure is required for task_type {task_type!r}")
        return TaskInputs(task_type, prompt, classes, output_structure)

    def _call(self, request: ApiRequest, key: str) -> dict[str, Any]:
        api = HostedApi(self._env.sinks, getattr(self._env.sinks, self.url_setting), self.provider, key)
        return api.post(request)

    def _outputs(self, answer: str, classes: Any) -> dict[str, Any]:
        return {"output": answer, "classes": classes}


class HostedApi(OperatorApi):
    """One provider's API at the operator's address, called with one key."""

    def __init__(self, sinks: SinkSettings, base_url: str, provider: str, key: str) -> None:
        super().__init__(sinks, base_url)
        self._provider = provider
        self._key = key

    def post(self, request: ApiRequest) -> dict[str, Any]:
        """The API's JSON answer (an object); raises :class:`ProviderError` on any failure."""
        check_destination(self.host, self.port, self._sinks)
        timeout = self._sinks.llm_api_timeout
        try:
            with self.client(timeout) as client:
                response = client.post(f"{self._base}{request.path}", json=request.body, headers=request.headers)
        except httpx.TimeoutException:
            raise self._error(f"did not answer within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise self._error(f"could not be reached: {type(exc).__name__}: {exc}") from None
        if response.is_error:
            raise self._error(f"answered HTTP {response.status_code} {response.reason_phrase}"
                              f"{self._detail(response)}", response.status_code)
        try:
            answer = response.json()
        except ValueError:
            raise self._error(f"answered HTTP {response.status_code} with something other than JSON") from None
        if not isinstance(answer, dict):
            raise self._error(f"answered HTTP {response.status_code} with JSON that is not an object")
        return answer

    def _detail(self, response: httpx.Response) -> str:
        """The provider's own explanation (``{"error": {"message": ...}}`` for all three), cut short."""
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            return ""
        message = error.get("message") if isinstance(error, Mapping) else error
        if not isinstance(message, str) or not message:
            return ""
        return f": {message[:_DETAIL_CHARS]}"

    def _error(self, what: str, status: int | None = None) -> ProviderError:
        return ProviderError(redact_text(f"{self._provider} API {what}", (self._key,)), status)
