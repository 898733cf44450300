"""Hosted LLM / VLM blocks: ``open_ai`` v2 and v3 (OpenAI's chat completions), ``anthropic_claude`` v1 and v2
(Anthropic's messages API), ``google_gemini`` v1 and v2 (Gemini's ``generateContent``), and the blocks served by
OpenRouter (OpenAI-style chat completions): ``llama_3_2_vision@v1``, ``llama_vision@v2``, ``openrouter@v1``,
``kimi_openrouter`` v1 and v2, ``qwen3_5_openrouter@v1`` and ``qwen3_6_openrouter@v1``.

Field names, defaults, choices and outputs follow the reference's manifests
(``core_steps/models/foundation/{openai,anthropic_claude,google_gemini}``). Each task type needs what the
reference's validator asks for (``prompt``, ``classes`` or ``output_structure``), checked at INIT; a field fed by
a selector counts as given (the worker checks its value on each frame).

There is no Roboflow API here, so the reference's proxy (an ``api_key`` of the form ``rf_key:account`` or
``rf_key:user:<id>``, open_ai@v3's default) cannot be used: such a key is refused at INIT, naming the field
(one fed by a selector fails the step on that frame instead). The URL each provider is called at is the worker
operator's (``WORKER_WORKFLOW_{OPENAI,ANTHROPIC,GEMINI,OPENROUTER}_API_URL``), never the workflow's.

The OpenRouter blocks of the reference's second generation (``llama_vision@v2``, ``kimi_openrouter@v2``,
``openrouter@v1``) default ``api_key`` to that proxy (``rf_key:account``): here a key must be given. Their
``privacy_level`` (``allow``, ``deny``, ``zdr``) becomes OpenRouter's provider preferences in the request.
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
LLAMA_V1 = "roboflow_core/llama_3_2_vision@v1"
LLAMA_V2 = "roboflow_core/llama_vision@v2"  # (sic) the reference's v2 changed the name, not just the version
OPENROUTER_V1 = "roboflow_core/openrouter@v1"
KIMI_V1 = "roboflow_core/kimi_openrouter@v1"
KIMI_V2 = "roboflow_core/kimi_openrouter@v2"
QWEN3_5_V1 = "roboflow_core/qwen3_5_openrouter@v1"
QWEN3_6_V1 = "roboflow_core/qwen3_6_openrouter@v1"

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

# The OpenRouter blocks: the manifests' model names -> OpenRouter's model slugs.
LLAMA_V1_MODELS: dict[str, str] = {
    "11B (Free) - OpenRouter": "meta-llama/llama-3.2-11b-vision-instruct:free",
    "11B (Regular) - OpenRouter": "meta-llama/llama-3.2-11b-vision-instruct",
    "90B (Free) - OpenRouter": "meta-llama/llama-3.2-90b-vision-instruct:free",
    "90B (Regular) - OpenRouter": "meta-llama/llama-3.2-90b-vision-instruct",
}
LLAMA_V2_MODELS: dict[str, str] = {"11B - OpenRouter": "meta-llama/llama-3.2-11b-vision-instruct"}
KIMI_MODELS: dict[str, str] = {  # v1 and v2
    "Kimi K2.5 - OpenRouter": "moonshotai/kimi-k2.5",
    "Kimi K2.6 - OpenRouter": "moonshotai/kimi-k2.6",
}
QWEN3_5_MODELS: dict[str, str] = {
    "Qwen 3.5 9B - OpenRouter": "qwen/qwen3.5-9b",
    "Qwen 3.5 27B - OpenRouter": "qwen/qwen3.5-27b",
    "Qwen 3.5 122B A10B - OpenRouter": "qwen/qwen3.5-122b-a10b",
    "Qwen 3.5 397B A17B - OpenRouter": "qwen/qwen3.5-397b-a17b",
    "Qwen 3.5 Flash 02-23 - OpenRouter": "qwen/qwen3.5-flash-02-23",
    "Qwen 3.5 Plus 20260420 - OpenRouter": "qwen/qwen3.5-plus-20260420",
}
QWEN3_6_MODELS: dict[str, str] = {
    "Qwen 3.6 27B - OpenRouter": "qwen/qwen3.6-27b",
    "Qwen 3.6 35B A3B - OpenRouter": "qwen/qwen3.6-35b-a3b",
    "Qwen 3.6 Flash - OpenRouter": "qwen/qwen3.6-flash",
    "Qwen 3.6 Plus - OpenRouter": "qwen/qwen3.6-plus",
    "Qwen 3.6 Max Preview - OpenRouter": "qwen/qwen3.6-max-preview",
}
# Each OpenRouter block's model table (openrouter@v1 has none: its model_id is OpenRouter's slug as given).
OPENROUTER_MODELS: dict[str, dict[str, str]] = {
    LLAMA_V1: LLAMA_V1_MODELS, LLAMA_V2: LLAMA_V2_MODELS, KIMI_V1: KIMI_MODELS, KIMI_V2: KIMI_MODELS,
    QWEN3_5_V1: QWEN3_5_MODELS, QWEN3_6_V1: QWEN3_6_MODELS,
}
# The second generation's privacy_level -> OpenRouter's provider preferences (None: none sent).
PRIVACY_LEVELS: dict[str, dict[str, Any] | None] = {
    "allow": None,
    "deny": {"data_collection": "deny"},
    "zdr": {"data_collection": "deny", "zdr": True},
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
    # The OpenRouter blocks' manifests: max_tokens > 1, a temperature that is never null.
    "llm_max_tokens_over_1": (lambda value: is_int(value) and value > 1, "an integer greater than 1"),
    "llm_temperature_2_required": (lambda value: is_number(value) and 0 <= value <= 2, "a number from 0.0 to 2.0"),
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


def _openrouter(name: str, tasks: tuple[str, ...], model: Field, managed: bool,
                key_kinds: tuple[str, ...] = (kinds.STRING, kinds.SECRET)) -> BlockSpec:
    """An OpenRouter block. ``managed``: the reference's second generation (its key defaults to Roboflow's proxy,
    refused here; ``privacy_level`` picks the providers that may serve the request)."""
    key = (Field("api_key", kinds=key_kinds, literal="str", default="rf_key:account") if managed else
           Field("api_key", kinds=key_kinds, literal="str"))
    privacy = (Field("privacy_level", literal="str", default="deny", choices=tuple(PRIVACY_LEVELS)),) if managed else ()
    return BlockSpec(
        names=(name,),
        family="llm",
        fields=(
            image_field("images", ("image",)),
            model,
            Field("task_type", literal="str", default=UNCONSTRAINED, choices=tasks),
            Field("prompt", kinds=(kinds.STRING,), literal="optional_str", default=None),
            Field("output_structure", literal="llm_output_structure", default=None),
            Field("classes", kinds=(kinds.LIST_OF_VALUES,), literal="str_list", default=None),
            key,
            *privacy,
            Field("max_tokens", literal="llm_max_tokens_over_1", default=500),
            Field("temperature", kinds=(kinds.FLOAT,), literal="llm_temperature_2_required", default=0.1),
            _CONCURRENCY,
        ),
        outputs=_OUTPUTS,
        check=_task_requirements("OpenRouter"),
    )


def _model_name(models: dict[str, str], default: str) -> Field:
    return _model(tuple(models), default)


OPENROUTER_BLOCKS = (
    # llama_3_2_vision@v1 has no object detection, and its api_key takes a string only (no secret kind).
    _openrouter(LLAMA_V1, OPENAI_TASKS, _model_name(LLAMA_V1_MODELS, "11B (Free) - OpenRouter"), managed=False,
                key_kinds=(kinds.STRING,)),
    _openrouter(LLAMA_V2, TASKS_WITH_DETECTION, _model_name(LLAMA_V2_MODELS, "11B - OpenRouter"), managed=True),
    _openrouter(OPENROUTER_V1, TASKS_WITH_DETECTION, Field("model_id", kinds=(kinds.STRING,), literal="str"),
                managed=True),
    _openrouter(KIMI_V1, TASKS_WITH_DETECTION, _model_name(KIMI_MODELS, "Kimi K2.6 - OpenRouter"), managed=False),
    _openrouter(KIMI_V2, TASKS_WITH_DETECTION, _model_name(KIMI_MODELS, "Kimi K2.6 - OpenRouter"), managed=True),
    _openrouter(QWEN3_5_V1, TASKS_WITH_DETECTION, _model_name(QWEN3_5_MODELS, "Qwen 3.5 27B - OpenRouter"),
                managed=False),
    _openrouter(QWEN3_6_V1, TASKS_WITH_DETECTION, _model_name(QWEN3_6_MODELS, "Qwen 3.6 35B A3B - OpenRouter"),
                managed=False),
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
    *OPENROUTER_BLOCKS,
)
