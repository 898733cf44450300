"""Hosted LLM / VLM blocks: OpenAI, Anthropic Claude, Google Gemini and the models OpenRouter serves (``client``:
what they share; ``prompts``: what each task type asks; ``openai_responses``: open_ai v4/v5; ``meta``: Meta's Muse
models through OpenRouter; ``xai``: xAI's Grok models), the first-generation GPT-4V blocks (``legacy``) and any
OpenAI-compatible server the workflow names (``openai_compatible``)."""

from services.core.workflows.catalogue import llm as catalogue
from services.worker.workflows.blocks.base import BlockFactory
from services.worker.workflows.blocks.llm.anthropic import ClaudeBlockV1, ClaudeBlockV2, ClaudeBlockV3
from services.worker.workflows.blocks.llm.gemini import GeminiBlockV1, GeminiBlockV2
from services.worker.workflows.blocks.llm.gemini_v3 import GeminiBlockV3, GeminiBlockV4
from services.worker.workflows.blocks.llm.legacy import LmmBlockV1, LmmForClassificationBlockV1, OpenAiBlockV1
from services.worker.workflows.blocks.llm.meta import MetaVlmBlock
from services.worker.workflows.blocks.llm.openai import OpenAiBlock, OpenAiBlockV3
from services.worker.workflows.blocks.llm.openai_compatible import OpenAiCompatibleBlock
from services.worker.workflows.blocks.llm.openai_responses import OpenAiResponsesBlock, OpenAiResponsesBlockV5
from services.worker.workflows.blocks.llm.openrouter import (
    KimiBlockV1,
    KimiBlockV2,
    LlamaVisionBlockV1,
    LlamaVisionBlockV2,
    OpenRouterAnyModelBlock,
    Qwen35Block,
    Qwen36Block,
)
from services.worker.workflows.blocks.llm.xai import SpaceXaiBlock

BLOCKS: dict[str, BlockFactory] = {
    catalogue.OPEN_AI_V2: OpenAiBlock,
    catalogue.OPEN_AI_V3: OpenAiBlockV3,
    catalogue.OPEN_AI_V4: OpenAiResponsesBlock,
    catalogue.OPEN_AI_V5: OpenAiResponsesBlockV5,
    catalogue.CLAUDE_V1: ClaudeBlockV1,
    catalogue.CLAUDE_V2: ClaudeBlockV2,
    catalogue.CLAUDE_V3: ClaudeBlockV3,
    catalogue.GEMINI_V1: GeminiBlockV1,
    catalogue.GEMINI_V2: GeminiBlockV2,
    catalogue.GEMINI_V3: GeminiBlockV3,
    catalogue.GEMINI_V4: GeminiBlockV4,
    catalogue.LLAMA_V1: LlamaVisionBlockV1,
    catalogue.LLAMA_V2: LlamaVisionBlockV2,
    catalogue.OPENROUTER_V1: OpenRouterAnyModelBlock,
    catalogue.KIMI_V1: KimiBlockV1,
    catalogue.KIMI_V2: KimiBlockV2,
    catalogue.QWEN3_5_V1: Qwen35Block,
    catalogue.QWEN3_6_V1: Qwen36Block,
    catalogue.META_VLM_V1: MetaVlmBlock,
    catalogue.SPACEXAI_V1: SpaceXaiBlock,
    catalogue.OPEN_AI_V1: OpenAiBlockV1,
    catalogue.LMM_V1: LmmBlockV1,
    catalogue.LMM_CLASSIFIER_V1: LmmForClassificationBlockV1,
    catalogue.OPENAI_COMPATIBLE_V1: OpenAiCompatibleBlock,
}
