"""Hosted LLM / VLM blocks: ``open_ai`` v2 and v3 (OpenAI's chat completions), v4 and v5 (OpenAI's Responses API:
``reasoning_effort`` per model, ``max_tokens`` from 16 or null), ``anthropic_claude`` v1 and v2
(Anthropic's messages API), ``google_gemini`` v1 and v2 (Gemini's ``generateContent``), and the blocks served by
OpenRouter (OpenAI-style chat completions): ``llama_3_2_vision@v1``, ``llama_vision@v2``, ``openrouter@v1``,
``kimi_openrouter`` v1 and v2, ``qwen3_5_openrouter@v1``, ``qwen3_6_openrouter@v1`` and ``meta_vlm@v1`` (Meta's
Muse models: a reasoning effort always sent, ``thinking`` output); ``spacexai@v1`` (xAI's Grok models, xAI's
Responses API with the user's own key).

Field names, defaults, choices and outputs follow the reference's manifests
(``core_steps/models/foundation/{openai,anthropic_claude,google_gemini}``). Each task type needs what the
reference's validator asks for (``prompt``, ``classes`` or ``output_structure``), checked at INIT; a field fed by
a selector counts as given (the worker checks its value on each frame).

There is no Roboflow API here, so the reference's proxy (an ``api_key`` of the form ``rf_key:account`` or
``rf_key:user:<id>``, open_ai v3's, v4's and v5's default) cannot be used: such a key is refused at INIT, naming
the field (one fed by a selector fails the step on that frame instead). The URL each provider is called at is the worker
operator's (``WORKER_WORKFLOW_{OPENAI,ANTHROPIC,GEMINI,OPENROUTER,XAI}_API_URL``), never the workflow's.

The OpenRouter blocks of the reference's second generation (``llama_vision@v2``, ``kimi_openrouter@v2``,
``openrouter@v1``) default ``api_key`` to that proxy (``rf_key:account``): here a key must be given. Their
``privacy_level`` (``allow``, ``deny``, ``zdr``) becomes OpenRouter's provider preferences in the request.

``anthropic_claude@v3`` is v2's manifest, and ``google_gemini@v3`` / ``@v4`` are v2's with newer Gemini models and
``google_code_execution``, each with ``api_key`` defaulting to that proxy (``rf_key:account``): refused here, so
the user's own key must be given (the reference calls the provider directly with one, as here).

The first generation (``open_ai@v1``, ``lmm@v1``, ``lmm_for_classification@v1``: the reference's legacy GPT-4V
blocks, with their ``OpenAI``, ``LMM`` and ``LMMForClassification`` names) asks OpenAI with a free prompt and gives
the answer as ``raw_output``, its JSON fields (``json_output_format`` / ``json_output``) as outputs of their own, and
the image's lineage. ``lmm_type`` once also offered ``cog_vlm``, which ran on Roboflow's own inference server: that
choice is refused at INIT, naming the field (a step's output giving it fails the step on that frame).

``openai_compatible@v1`` calls any OpenAI-compatible chat completions API (vLLM, Ollama, LM Studio, a gateway) at the
workflow's own ``base_url``: unlike the other blocks' URLs, the workflow names it, so every request goes through the
sinks' outbound network policy (``WORKER_WORKFLOW_ALLOWED_HOSTS`` / ``_NETWORKS``: loopback only unless the
operator allows more). A literal ``base_url`` must be an http(s) URL with a host and no query or fragment.
"""

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from services.core.errors import InvalidPayloadError
from services.core.workflows import kinds
from services.core.workflows.blocks import BlockSpec, Field, image_field, is_int, is_number, register_literals
from services.core.workflows.query_language import validate_operations_map

OPEN_AI_V2 = "roboflow_core/open_ai@v2"
OPEN_AI_V3 = "roboflow_core/open_ai@v3"
OPEN_AI_V4 = "roboflow_core/open_ai@v4"  # v4 and v5: OpenAI's Responses API
OPEN_AI_V5 = "roboflow_core/open_ai@v5"
CLAUDE_V1 = "roboflow_core/anthropic_claude@v1"
CLAUDE_V2 = "roboflow_core/anthropic_claude@v2"
CLAUDE_V3 = "roboflow_core/anthropic_claude@v3"
GEMINI_V1 = "roboflow_core/google_gemini@v1"
GEMINI_V2 = "roboflow_core/google_gemini@v2"
GEMINI_V3 = "roboflow_core/google_gemini@v3"
GEMINI_V4 = "roboflow_core/google_gemini@v4"
LLAMA_V1 = "roboflow_core/llama_3_2_vision@v1"
LLAMA_V2 = "roboflow_core/llama_vision@v2"  # (sic) the reference's v2 changed the name, not just the version
OPENROUTER_V1 = "roboflow_core/openrouter@v1"
KIMI_V1 = "roboflow_core/kimi_openrouter@v1"
KIMI_V2 = "roboflow_core/kimi_openrouter@v2"
QWEN3_5_V1 = "roboflow_core/qwen3_5_openrouter@v1"
QWEN3_6_V1 = "roboflow_core/qwen3_6_openrouter@v1"
META_VLM_V1 = "roboflow_core/meta_vlm@v1"  # Meta's Muse models, through OpenRouter
SPACEXAI_V1 = "roboflow_core/spacexai@v1"  # xAI's Grok models, through xAI's Responses API
OPEN_AI_V1 = "roboflow_core/open_ai@v1"
LMM_V1 = "roboflow_core/lmm@v1"
LMM_CLASSIFIER_V1 = "roboflow_core/lmm_for_classification@v1"
OPENAI_COMPATIBLE_V1 = "roboflow_core/openai_compatible@v1"

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
# open_ai v4/v5 (the Responses API): each model, in the manifests' order -> the reasoning efforts it takes (none:
# it does not reason, and a reasoning_effort given is not sent, as the reference does).
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")  # the manifests' choices
_EFFORTS_XHIGH = ("none", "low", "medium", "high", "xhigh")  # gpt-5.2 and newer
_EFFORTS_GPT_5 = ("minimal", "low", "medium", "high")  # the gpt-5 generation
OPENAI_RESPONSES_MODELS: dict[str, tuple[str, ...]] = {
    "gpt-5.6-sol": _EFFORTS_XHIGH, "gpt-5.6-terra": _EFFORTS_XHIGH, "gpt-5.6-luna": _EFFORTS_XHIGH,
    "gpt-5.5": _EFFORTS_XHIGH, "gpt-5.4": _EFFORTS_XHIGH, "gpt-5.4-mini": _EFFORTS_XHIGH,
    "gpt-5.4-nano": _EFFORTS_XHIGH, "gpt-5.2": _EFFORTS_XHIGH, "gpt-5.1": ("none", "low", "medium", "high"),
    "gpt-5": _EFFORTS_GPT_5, "gpt-5-mini": _EFFORTS_GPT_5, "gpt-5-nano": _EFFORTS_GPT_5,
    "gpt-4.1": (), "gpt-4.1-mini": (), "gpt-4.1-nano": (), "gpt-4o": (), "gpt-4o-mini": (),
}
OPENAI_RESPONSES_MIN_TOKENS = 16  # the manifests' max_tokens minimum (null: the model's own limit)
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
# Gemini v3 and v4: the models that take a thinking level; the reference marks the same ones as running code
# natively (google_code_execution: a code_execution tool is sent to them only).
GEMINI_V3_THINKING_MODELS = ("gemini-3.7-flash", "gemini-3.6-flash", "gemini-3.5-flash", "gemini-3.5-flash-lite",
                             "gemini-3.1-pro-preview", "gemini-3.1-flash-lite", "gemini-3-flash-preview")
GEMINI_V3_CODE_EXECUTION_MODELS = GEMINI_V3_THINKING_MODELS
GEMINI_V3_MODELS = (*GEMINI_V3_THINKING_MODELS, "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite")
# Older preview names every Gemini version accepts and sends as the model they became.
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
# meta_vlm@v1: the manifest's Muse names -> OpenRouter's slugs; its reasoning efforts (Muse models refuse to answer
# without reasoning, so one is always sent) and max_tokens' default (null: that default too).
META_MODELS: dict[str, str] = {
    "Muse Spark 1.1": "meta/muse-spark-1.1",
    "Muse Spark 1.2": "meta/muse-spark-1.2",
    "Muse Glimmer": "meta/muse-glimmer-30b",
}
META_REASONING_EFFORTS = ("low", "medium", "high")
META_DEFAULT_MAX_TOKENS = 2048
# spacexai@v1: the Grok models (sent as named) and the reasoning efforts the manifest offers.
XAI_MODELS = ("grok-4.6", "grok-4.5")
XAI_REASONING_EFFORTS = ("low", "high")
# The second generation's privacy_level -> OpenRouter's provider preferences (None: none sent).
PRIVACY_LEVELS: dict[str, dict[str, Any] | None] = {
    "allow": None,
    "deny": {"data_collection": "deny"},
    "zdr": {"data_collection": "deny", "zdr": True},
}

# The first generation (open_ai@v1, lmm@v1, lmm_for_classification@v1).
OPENAI_V1_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-5.4", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.5")
IMAGE_DETAILS = ("auto", "high", "low")
GPT_4V = "gpt_4v"
COG_VLM = "cog_vlm"  # the reference's removed second LMM: refused
LMM_TYPES = (GPT_4V, COG_VLM)
# lmm_config's fields and their defaults (the reference's LMMConfig; other keys are ignored, as there).
LMM_CONFIG_DEFAULTS: dict[str, Any] = {"max_tokens": 450, "gpt_image_detail": "auto", "gpt_model_version": "gpt-4o"}
COG_VLM_REFUSAL = ("'cog_vlm' (CogVLM) ran on Roboflow's own inference server, which this manager does not have "
                   "(the reference has removed it too); use 'gpt_4v' with an OpenAI API key in remote_api_key, or "
                   "roboflow_core/openai_compatible@v1 with a model server of your own")
# open_ai@v1's and lmm@v1's own outputs; each field of their JSON format adds one more.
LEGACY_OUTPUTS: dict[str, tuple[str, ...]] = {
    "parent_id": (kinds.PARENT_ID,),
    "root_parent_id": (kinds.PARENT_ID,),
    "image": (kinds.IMAGE_METADATA,),
    "structured_output": (kinds.DICTIONARY,),
    "raw_output": (kinds.STRING,),
}
LMM_CLASSIFIER_OUTPUTS: dict[str, tuple[str, ...]] = {
    "raw_output": (kinds.STRING,),
    "top": (kinds.TOP_CLASS,),
    "parent_id": (kinds.PARENT_ID,),
    "root_parent_id": (kinds.PARENT_ID,),
    "image": (kinds.IMAGE_METADATA,),
    "prediction_type": (kinds.PREDICTION_TYPE,),
}


def is_output_structure(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def lmm_config(value: Any) -> dict[str, Any] | None:
    """``lmm_config`` with the reference's defaults filled in, or None when it is not one (its fields' types)."""
    if not isinstance(value, dict):
        return None
    config = {name: value.get(name, default) for name, default in LMM_CONFIG_DEFAULTS.items()}
    tokens, detail, model = config["max_tokens"], config["gpt_image_detail"], config["gpt_model_version"]
    ok = is_int(tokens) and tokens > 0 and detail in IMAGE_DETAILS and isinstance(model, str) and model != ""
    return config if ok else None


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
    # The first generation's.
    "lmm_type": (lambda value: value in LMM_TYPES, f"{GPT_4V!r}"),
    "lmm_config": (lambda value: lmm_config(value) is not None,
                   "an object of max_tokens (a positive integer), gpt_image_detail ('low', 'high' or 'auto') and "
                   "gpt_model_version (a model name)"),
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


register_literals({
    "llm_max_output_tokens": (
        lambda value: value is None or (is_int(value) and value >= OPENAI_RESPONSES_MIN_TOKENS),
        f"an integer >= {OPENAI_RESPONSES_MIN_TOKENS} or null"),
})


def reasoning_effort_refusal(model: Any, effort: Any) -> str | None:
    """Why open_ai v4/v5 cannot send ``effort`` to ``model`` (None: it can, or the model does not reason or is not
    listed, and the effort is then not sent). The reference raises this on each request; a literal pair fails INIT."""
    efforts = OPENAI_RESPONSES_MODELS.get(model) if isinstance(model, str) else None
    if effort is None or not efforts or effort in efforts:
        return None
    return f"model {model!r} does not take reasoning_effort {effort!r} (it takes {', '.join(efforts)})"


def _openai_responses(name: str) -> BlockSpec:
    """open_ai v4 / v5: the same manifest (v5 differs in how it asks for object detection, in the worker)."""
    requirements = _task_requirements("OpenAI")

    def check(params: Mapping[str, Any], path: str) -> None:
        requirements(params, path)
        effort = params["reasoning_effort"]  # a step's output ("$steps...") is checked on each frame
        refusal = None if isinstance(effort, str) and effort.startswith("$") else \
            reasoning_effort_refusal(params["model_version"], effort)
        if refusal is not None:
            raise InvalidPayloadError(f"field '{path}.reasoning_effort': {refusal}")

    return BlockSpec(
        names=(name,),
        family="llm",
        fields=(
            *_common(TASKS_WITH_DETECTION, "rf_key:account"),  # the proxy's key by default: refused here
            _model(tuple(OPENAI_RESPONSES_MODELS), "gpt-5.1"),
            Field("reasoning_effort", kinds=(kinds.STRING,), literal="optional_str", default=None,
                  choices=REASONING_EFFORTS),
            Field("image_detail", kinds=(kinds.STRING,), literal="str", default="auto",
                  choices=("auto", "high", "low")),
            Field("max_tokens", literal="llm_max_output_tokens", default=None),
            Field("temperature", kinds=(kinds.FLOAT,), literal="llm_temperature_2", default=None),
            _CONCURRENCY,
        ),
        outputs=_OUTPUTS,
        check=check,
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

# meta_vlm@v1 (Meta's Muse models through OpenRouter): the second generation's key and privacy_level, a reasoning
# effort, max_tokens 2048 and no temperature unless given; ``thinking`` is the model's reasoning.
META_VLM = BlockSpec(
    names=(META_VLM_V1,),
    family="llm",
    fields=(
        image_field("images", ("image",)),
        _model_name(META_MODELS, "Muse Spark 1.2"),
        Field("task_type", literal="str", default=UNCONSTRAINED, choices=TASKS_WITH_DETECTION),
        Field("prompt", kinds=(kinds.STRING,), literal="optional_str", default=None),
        Field("output_structure", literal="llm_output_structure", default=None),
        Field("classes", kinds=(kinds.LIST_OF_VALUES,), literal="str_list", default=None),
        Field("reasoning_effort", literal="str", default="low", choices=META_REASONING_EFFORTS),
        Field("max_tokens", literal="llm_max_tokens_over_1", default=META_DEFAULT_MAX_TOKENS),  # null: the default
        Field("temperature", kinds=(kinds.FLOAT,), literal="llm_temperature_2", default=None),
        Field("api_key", kinds=(kinds.STRING, kinds.SECRET), literal="str", default="rf_key:account"),
        Field("privacy_level", literal="str", default="deny", choices=tuple(PRIVACY_LEVELS)),
        _CONCURRENCY,
    ),
    outputs={**_OUTPUTS, "thinking": (kinds.STRING,)},
    check=_task_requirements("OpenRouter"),
)

# spacexai@v1 (xAI's Grok models, xAI's Responses API): a key of the user's own is required (the reference offers
# Roboflow's proxy only where its operator enables it, off by default; refused here in any case).
SPACEXAI = BlockSpec(
    names=(SPACEXAI_V1,),
    family="llm",
    fields=(
        *_common(TASKS_WITH_DETECTION),
        _model(XAI_MODELS, "grok-4.6"),
        Field("reasoning_effort", kinds=(kinds.STRING,), literal="optional_str", default=None,
              choices=XAI_REASONING_EFFORTS),
        Field("max_tokens", literal="llm_max_output_tokens", default=None),
        Field("temperature", kinds=(kinds.FLOAT,), literal="llm_temperature_2", default=None),
        _CONCURRENCY,
    ),
    outputs=_OUTPUTS,
    check=_task_requirements("xAI"),
)


def _legacy_outputs(format_field: str) -> Callable[[Mapping[str, Any]], dict[str, tuple[str, ...]]]:
    """open_ai@v1's and lmm@v1's outputs: their own, then one of any kind per field of their JSON format."""
    def outputs(step: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        expected = step.get(format_field)
        names = [name for name in expected if isinstance(name, str)] if isinstance(expected, dict) else []
        return {**LEGACY_OUTPUTS, **{name: (kinds.WILDCARD,) for name in names if name not in LEGACY_OUTPUTS}}
    return outputs


def _legacy_check(format_field: str | None) -> Callable[[Mapping[str, Any], str], None]:
    """The first generation's rules: ``cog_vlm`` refused, a key for ``gpt_4v``, no JSON field named as one of the
    block's own outputs (the reference would give two outputs one name)."""
    def check(params: Mapping[str, Any], path: str) -> None:
        lmm_type = params.get("lmm_type", GPT_4V)
        if lmm_type == COG_VLM:
            raise InvalidPayloadError(f"field '{path}.lmm_type': {COG_VLM_REFUSAL}")
        if "remote_api_key" in params and lmm_type == GPT_4V and params["remote_api_key"] is None:
            raise InvalidPayloadError(f"field '{path}.remote_api_key' is required for lmm_type {GPT_4V!r} (your "
                                      "OpenAI API key)")
        expected = params.get(format_field) if format_field is not None else None
        for name in expected or {}:
            if name in LEGACY_OUTPUTS:
                raise InvalidPayloadError(f"field '{path}.{format_field}.{name}': {name!r} is one of the block's own "
                                          f"outputs ({', '.join(LEGACY_OUTPUTS)}); name the JSON field otherwise")
    return check


_LMM_FIELDS = (
    Field("lmm_type", kinds=(kinds.STRING,), literal="lmm_type"),
    Field("lmm_config", literal="lmm_config", default=LMM_CONFIG_DEFAULTS),
    Field("remote_api_key", kinds=(kinds.STRING, kinds.SECRET), literal="optional_str", default=None),
)

FIRST_GENERATION_BLOCKS = (
    BlockSpec(
        names=(OPEN_AI_V1, "OpenAI"),
        family="llm",
        fields=(
            image_field("images", ("image",)),
            Field("prompt", kinds=(kinds.STRING,), literal="str"),
            # required, as the manifest's (which lets null through to fail on each frame: refused here)
            Field("openai_api_key", kinds=(kinds.STRING, kinds.SECRET), literal="str"),
            Field("openai_model", kinds=(kinds.STRING,), literal="str", default="gpt-4o", choices=OPENAI_V1_MODELS),
            Field("json_output_format", literal="llm_output_structure", default=None),
            Field("image_detail", kinds=(kinds.STRING,), literal="str", default="auto", choices=IMAGE_DETAILS),
            Field("max_tokens", literal="positive_int", default=450),
        ),
        dynamic_outputs=_legacy_outputs("json_output_format"),
        check=_legacy_check("json_output_format"),
    ),
    BlockSpec(
        names=(LMM_V1, "LMM"),
        family="llm",
        fields=(
            image_field("images", ("image",)),
            Field("prompt", kinds=(kinds.STRING,), literal="str"),
            *_LMM_FIELDS,
            Field("json_output", literal="llm_output_structure", default=None),
        ),
        dynamic_outputs=_legacy_outputs("json_output"),
        check=_legacy_check("json_output"),
    ),
    BlockSpec(
        names=(LMM_CLASSIFIER_V1, "LMMForClassification"),
        family="llm",
        fields=(
            image_field("images", ("image",)),
            Field("classes", kinds=(kinds.LIST_OF_VALUES,), literal="str_list"),
            *_LMM_FIELDS,
        ),
        outputs=LMM_CLASSIFIER_OUTPUTS,
        check=_legacy_check(None),
    ),
)


def _check_base_url(params: Mapping[str, Any], path: str) -> None:
    """openai_compatible@v1: a literal base URL is an http(s) URL with a host (one a step gives: on each frame)."""
    url = params["base_url"]
    if url.startswith("$"):
        return
    try:
        parts = urlsplit(url)
        has_host = bool(parts.hostname)
    except ValueError:
        parts, has_host = None, False
    if parts is None or parts.scheme not in ("http", "https") or not has_host:
        raise InvalidPayloadError(f"field '{path}.base_url': expected an http:// or https:// URL with a host, e.g. "
                                  "'http://localhost:8000/v1'")
    if parts.query or parts.fragment:
        raise InvalidPayloadError(f"field '{path}.base_url': the URL of the API's root (requests go to "
                                  "<base_url>/chat/completions) takes no query or fragment")


OPENAI_COMPATIBLE = BlockSpec(
    names=(OPENAI_COMPATIBLE_V1,),
    family="llm",
    fields=(
        Field("base_url", kinds=(kinds.STRING,), literal="str"),
        Field("model_name", kinds=(kinds.STRING,), literal="str"),
        Field("api_key", kinds=(kinds.STRING, kinds.SECRET), literal="optional_str", default=None),
        Field("system_prompt", kinds=(kinds.STRING,), literal="optional_str", default=None),
        Field("prompt", kinds=(kinds.STRING,), literal="str"),
        # name -> a selector (an image, a list of images, anything else as text) or a literal
        Field("prompt_parameters", literal="dict", default={}, nested=True),
        Field("prompt_parameters_operations", literal="dict", default={}),
        Field("max_tokens", literal="llm_max_tokens_over_1", default=500),
        Field("temperature", kinds=(kinds.FLOAT,), literal="llm_temperature_2", default=None),
        Field("extra_body", literal="optional_dict", default=None),
    ),
    outputs={"output": (kinds.STRING, kinds.LANGUAGE_MODEL_OUTPUT), "error_status": (kinds.STRING,)},
    check=_check_base_url,
)


def _claude_v2(name: str, api_key_default: Any = None) -> BlockSpec:
    """anthropic_claude v2 and v3: one manifest (v3's ``api_key`` defaults to Roboflow's proxy, refused here)."""
    return BlockSpec(
        names=(name,),
        family="llm",
        fields=(
            *_common(TASKS_WITH_DETECTION, api_key_default),
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
    )


def _gemini_v2(name: str, models: tuple[str, ...], current: bool = False) -> BlockSpec:
    """google_gemini v2, v3 and v4. ``current`` (v3, v4): ``api_key`` defaults to Roboflow's proxy (refused here)
    and ``google_code_execution`` is added."""
    code_execution = (Field("google_code_execution", kinds=(kinds.BOOLEAN,), literal="llm_optional_bool",
                            default=False),) if current else ()
    return BlockSpec(
        names=(name,),
        family="llm",
        fields=(
            *_common(TASKS_WITH_DETECTION, "rf_key:account" if current else None),
            _model((*models, *GEMINI_MODEL_ALIASES), "gemini-3.1-pro-preview"),
            Field("thinking_level", kinds=(kinds.STRING,), literal="optional_str", default=None,
                  choices=("low", "high")),
            Field("temperature", kinds=(kinds.FLOAT,), literal="llm_temperature_2", default=None),
            Field("max_tokens", literal="llm_optional_positive_int", default=None),
            *code_execution,
            _CONCURRENCY,
        ),
        outputs=_OUTPUTS,
        check=_task_requirements("Google Gemini"),
    )

BLOCKS = (
    _openai(OPEN_AI_V2, OPENAI_V2_MODELS, "gpt-4o"),
    # v3's default key is the reference's proxy ("rf_key:account"): refused here, so a key must be given.
    _openai(OPEN_AI_V3, OPENAI_V3_MODELS, "gpt-5", api_key_default="rf_key:account"),
    _openai_responses(OPEN_AI_V4),
    _openai_responses(OPEN_AI_V5),
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
    _claude_v2(CLAUDE_V2),
    _claude_v2(CLAUDE_V3, api_key_default="rf_key:account"),
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
    _gemini_v2(GEMINI_V2, GEMINI_V2_MODELS),
    _gemini_v2(GEMINI_V3, GEMINI_V3_MODELS, current=True),
    _gemini_v2(GEMINI_V4, GEMINI_V3_MODELS, current=True),
    *OPENROUTER_BLOCKS,
    META_VLM,
    SPACEXAI,
    *FIRST_GENERATION_BLOCKS,
    OPENAI_COMPATIBLE,
)

CHECKS: dict[tuple[str, str], Callable[[Any, str], None]] = {
    (OPENAI_COMPATIBLE_V1, "prompt_parameters_operations"): validate_operations_map,
}
