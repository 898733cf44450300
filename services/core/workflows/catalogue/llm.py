"""Hosted LLM / VLM blocks: ``open_ai`` v2 and v3 (OpenAI's chat completions), ``anthropic_claude`` v1 and v2
(Anthropic's messages API) and ``google_gemini`` v1 and v2 (Gemini's ``generateContent``).

Field names, defaults, choices and outputs follow the reference's manifests
(``core_steps/models/foundation/{openai,anthropic_claude,google_gemini}``). Each task type needs what the
reference's validator asks for (``prompt``, ``classes`` or ``output_structure``), checked at INIT; a field fed by
a selector counts as given (the worker checks its value on each frame).

There is no Roboflow API here, so the reference's proxy (an ``api_key`` of the form ``rf_key:account`` or
``rf_key:user:<id>``, open_ai@v3's default) cannot be used: such a key is refused at INIT, naming the field
(one fed by a selector fails the step on that frame instead). The URL each provider is called at is the worker
operator's (``WORKER_WORKFLOW_{OPENAI,ANTHROPIC,GEMINI}_API_URL``), never the workflow's.
"""

from collections.abc import Mapping
from typing import Any

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, image_field, is_int, is_number, register_literals

OPEN_AI_V2 = "roboflow_core/open_ai@v2"
OPEN_AI_V3 = "roboflow_core/open_ai@v3"
CLAUDE_V1 = "roboflow_core/anthropic_claude@v1"
CLAUDE_V2 = "roboflow_core/anthropic_claude@v2"
GEMINI_V1 = "roboflow_core/google_gemini@v1"
GEMINI_V2 = "roboflow_core/google_gemini@v2"

UNCONSTRAINED = "unconstrained"
OCR = "ocr"
STRUCTURED = "structured-answering"
CLASSIFICATION = "classification"
MULTI_LABEL = "multi-label-classification"
VQA = "visual-question-answering"
CAPTION = "caption"
DETAILED_CAPTION = "detailed-caption"
OBJECT_DETECTION = "object-detection"
# The task types of open_ai v2/v3, in the manifests' order; Claude and Gemini add object detection.
OPENAI_TASKS = (UNCONSTRAINED, OCR, STRUCTURED, CLASSIFICATION, MULTI_LABEL, VQA, CAPTION, DETAILED_CAPTION)
TASKS_WITH_DETECTION = (*OPENAI_TASKS, OBJECT_DETECTION)
TASKS_REQUIRING_PROMPT = frozenset({UNCONSTRAINED, VQA})
TASKS_REQUIRING_CLASSES = frozenset({CLASSIFICATION, MULTI_LABEL, OBJECT_DETECTION})
TASKS_REQUIRING_OUTPUT_STRUCTURE = frozenset({STRUCTURED})

# The reference sends a key of these forms to Roboflow's API proxy instead of the provider.
ROBOFLOW_PROXY_PREFIXES = ("rf_key:account", "rf_key:user:")

OPENAI_V2_MODELS = ("gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini", "gpt-5", "gpt-5.4",
                    "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.5")
OPENAI_V3_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano",
                    "gpt-5.4", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.5", "o3", "o4-mini")
# Claude v1: the manifest's names -> the model ids Anthropic's API takes (a few legacy names map to newer ones,
# as the reference's table does).
CLAUDE_V1_MODELS: dict[str, str] = {
    "claude-fable-5": "claude-fable-5",
    "claude-opus-4-7": "claude-opus-4-7",
    "claude-opus-4-6": "claude-opus-4-6",
    "claude-sonnet-4-6": "claude-sonnet-4-6",
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-opus-4": "claude-opus-4-20250514",
    "claude-sonnet-4": "claude-sonnet-4-20250514",
    "claude-3-7-sonnet": "claude-3-7-sonnet-20250219",
    "claude-3-5-sonnet-v2": "claude-sonnet-4-5-20250929",
    "claude-3-5-haiku": "claude-3-5-haiku-20241022",
    "claude-3-5-sonnet": "claude-sonnet-4-5-20250929",
    "claude-3-opus": "claude-3-opus-20240229",
    "claude-3-haiku": "claude-3-haiku-20240307",
}
# Names a selector may give v1 besides the manifest's choices (the reference's table has them too).
CLAUDE_V1_EXTRA_NAMES: dict[str, str] = {
    "claude-4-5-sonnet-v2": "claude-sonnet-4-5-20250929",
    "claude-4-5-sonnet": "claude-sonnet-4-5-20250929",
}
# Claude v2: name -> (model id, the most output tokens: max_tokens' default and the thinking budget's basis).
CLAUDE_V2_MODELS: dict[str, tuple[str, int]] = {
    "claude-fable-5": ("claude-fable-5", 128000),
    "claude-opus-4-7": ("claude-opus-4-7", 128000),
    "claude-opus-4-6": ("claude-opus-4-6", 128000),
    "claude-sonnet-4-6": ("claude-sonnet-4-6", 64000),
    "claude-sonnet-4-5": ("claude-sonnet-4-5-20250929", 64000),
    "claude-haiku-4-5": ("claude-haiku-4-5-20251001", 64000),
    "claude-opus-4-5": ("claude-opus-4-5-20251101", 64000),
    "claude-sonnet-4": ("claude-sonnet-4-20250514", 64000),
    "claude-opus-4-1": ("claude-opus-4-1-20250805", 32000),
    "claude-opus-4": ("claude-opus-4-20250514", 32000),
}
CLAUDE_V2_DEFAULT_MAX_OUTPUT = 64000  # a model v2 does not list (a selector's value goes to the API as given)
CLAUDE_MIN_THINKING_BUDGET = 1024
GEMINI_V1_MODELS = ("gemini-3.1-pro-preview", "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite")
# Gemini v2: the models that take a thinking level (they get no temperature; the others get no thinking level).
GEMINI_V2_THINKING_MODELS = ("gemini-3.5-flash", "gemini-3.1-pro-preview", "gemini-3.1-flash-lite",
                             "gemini-3-flash-preview")
GEMINI_V2_MODELS = (*GEMINI_V2_THINKING_MODELS, "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite")
# Older preview names both Gemini versions accept and send as the model they became.
GEMINI_MODEL_ALIASES = {
    "gemini-2.5-pro-preview-06-05": "gemini-2.5-pro",
    "gemini-2.5-pro-preview-05-06": "gemini-2.5-pro",
    "gemini-2.5-pro-preview-03-25": "gemini-2.5-pro",
}


def is_output_structure(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


register_literals({
    "llm_output_structure": (lambda value: value is None or is_output_structure(value),
                             "an object of field names to descriptions (strings) or null"),
    "llm_temperature_2": (lambda value: value is None or (is_number(value) and 0 <= value <= 2),
                          "a number from 0.0 to 2.0 or null"),
    "llm_temperature_1": (lambda value: value is None or (is_number(value) and 0 <= value <= 1),
                          "a number from 0.0 to 1.0 or null"),
    "llm_optional_bool": (lambda value: value is None or isinstance(value, bool), "true, false or null"),
    "llm_thinking_budget": (lambda value: value is None or (is_int(value) and value >= CLAUDE_MIN_THINKING_BUDGET),
                            f"an integer >= {CLAUDE_MIN_THINKING_BUDGET} or null"),
    "llm_optional_positive_int": (lambda value: value is None or (is_int(value) and value > 0),
                                  "a positive integer or null"),
})


def is_proxy_key(value: Any) -> bool:
    """Whether an api key is one the reference sends to Roboflow's API proxy."""
    return isinstance(value, str) and value.startswith(ROBOFLOW_PROXY_PREFIXES)


def proxy_key_refusal(provider: str) -> str:
    """Why such a key cannot be used (never the key itself)."""
    return (f"an api_key of the form 'rf_key:...' asks for Roboflow's API proxy, which this manager does not "
            f"have; give your own {provider} API key (e.g. from environment_secrets_store)")


def _given(value: Any) -> bool:
    return value is not None


def _task_requirements(provider: str) -> Any:
    def check(params: Mapping[str, Any], path: str) -> None:
        """The manifest's validator: what each task type needs; a proxy key is refused."""
        task = params["task_type"]
        needs = (("prompt", TASKS_REQUIRING_PROMPT), ("classes", TASKS_REQUIRING_CLASSES),
                 ("output_structure", TASKS_REQUIRING_OUTPUT_STRUCTURE))
        for name, tasks in needs:
            if task in tasks and not _given(params[name]):
                raise InvalidPayloadError(f"field '{path}.{name}' is required for task_type {task!r}")
        if is_proxy_key(params["api_key"]):
            raise InvalidPayloadError(f"field '{path}.api_key': {proxy_key_refusal(provider)}")
        if params.get("extended_thinking") is True:  # Claude v2
            if params["temperature"] is not None:
                raise InvalidPayloadError(f"field '{path}.temperature' cannot be used when extended_thinking is "
                                          "enabled")
            budget, limit = params["thinking_budget_tokens"], params["max_tokens"]
            if is_int(budget) and is_int(limit) and budget >= limit:
                raise InvalidPayloadError(f"field '{path}.thinking_budget_tokens': {budget} must be less than "
                                          f"max_tokens ({limit})")
    return check


_OUTPUTS: dict[str, tuple[str, ...]] = {
    "output": (kinds.STRING, kinds.LANGUAGE_MODEL_OUTPUT),
    "classes": (kinds.LIST_OF_VALUES,),
}


def _common(tasks: tuple[str, ...], api_key_default: Any = None) -> tuple[Field, ...]:
    key = (Field("api_key", kinds=(kinds.STRING, kinds.SECRET), literal="str") if api_key_default is None else
           Field("api_key", kinds=(kinds.STRING, kinds.SECRET), literal="str", default=api_key_default))
    return (
        image_field("images", ("image",)),
        Field("task_type", literal="str", default=UNCONSTRAINED, choices=tasks),
        Field("prompt", kinds=(kinds.STRING,), literal="optional_str", default=None),
        Field("output_structure", literal="llm_output_structure", default=None),
        Field("classes", kinds=(kinds.LIST_OF_VALUES,), literal="str_list", default=None),
        key,
    )


def _model(choices: tuple[str, ...], default: str) -> Field:
    return Field("model_version", kinds=(kinds.STRING,), literal="str", default=default, choices=choices)


_CONCURRENCY = Field("max_concurrent_requests", literal="optional_int", default=None)  # one image per request here


def _openai(name: str, models: tuple[str, ...], default_model: str, api_key_default: Any = None) -> BlockSpec:
    return BlockSpec(
        names=(name,),
        family="llm",
        fields=(
            *_common(OPENAI_TASKS, api_key_default),
            _model(models, default_model),
            Field("image_detail", kinds=(kinds.STRING,), literal="str", default="auto",
                  choices=("auto", "high", "low")),
            Field("max_tokens", literal="positive_int", default=450),
            Field("temperature", kinds=(kinds.FLOAT,), literal="llm_temperature_2", default=None),
            _CONCURRENCY,
        ),
        outputs=_OUTPUTS,
        check=_task_requirements("OpenAI"),
    )


BLOCKS = (
    _openai(OPEN_AI_V2, OPENAI_V2_MODELS, "gpt-4o"),
    # v3's default key is the reference's proxy ("rf_key:account"): refused here, so a key must be given.
    _openai(OPEN_AI_V3, OPENAI_V3_MODELS, "gpt-5", api_key_default="rf_key:account"),
    BlockSpec(
        names=(CLAUDE_V1,),
        family="llm",
        fields=(
            *_common(TASKS_WITH_DETECTION),
            _model(tuple(CLAUDE_V1_MODELS), "claude-sonnet-4-5"),
            Field("max_tokens", literal="positive_int", default=450),
            Field("temperature", kinds=(kinds.FLOAT,), literal="llm_temperature_2", default=None),
            Field("max_image_size", kinds=(kinds.INTEGER,), literal="positive_int", default=1024),
            _CONCURRENCY,
        ),
        outputs=_OUTPUTS,
        check=_task_requirements("Anthropic"),
    ),
    BlockSpec(
        names=(CLAUDE_V2,),
        family="llm",
        fields=(
            *_common(TASKS_WITH_DETECTION),
            _model(tuple(CLAUDE_V2_MODELS), "claude-sonnet-4-5"),
            Field("extended_thinking", literal="llm_optional_bool", default=None),
            Field("thinking_budget_tokens", literal="llm_thinking_budget", default=None),
            Field("max_tokens", literal="llm_optional_positive_int", default=None),
            Field("temperature", kinds=(kinds.FLOAT,), literal="llm_temperature_1", default=None),
            Field("max_image_size", kinds=(kinds.INTEGER,), literal="positive_int", default=1024),
            _CONCURRENCY,
        ),
        outputs=_OUTPUTS,
        check=_task_requirements("Anthropic"),
    ),
    BlockSpec(
        names=(GEMINI_V1,),
        family="llm",
        fields=(
            *_common(TASKS_WITH_DETECTION),
            _model((*GEMINI_V1_MODELS, *GEMINI_MODEL_ALIASES), "gemini-2.5-flash"),
            Field("max_tokens", literal="positive_int", default=450),
            Field("temperature", kinds=(kinds.FLOAT,), literal="llm_temperature_2", default=None),
            _CONCURRENCY,
        ),
        outputs=_OUTPUTS,
        check=_task_requirements("Google Gemini"),
    ),
    BlockSpec(
        names=(GEMINI_V2,),
        family="llm",
        fields=(
            *_common(TASKS_WITH_DETECTION),
            _model((*GEMINI_V2_MODELS, *GEMINI_MODEL_ALIASES), "gemini-3.1-pro-preview"),
            Field("thinking_level", kinds=(kinds.STRING,), literal="optional_str", default=None,
                  choices=("low", "high")),
            Field("temperature", kinds=(kinds.FLOAT,), literal="llm_temperature_2", default=None),
            Field("max_tokens", literal="llm_optional_positive_int", default=None),
            _CONCURRENCY,
        ),
        outputs=_OUTPUTS,
        check=_task_requirements("Google Gemini"),
    ),
)
