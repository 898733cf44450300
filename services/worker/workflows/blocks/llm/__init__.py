"""Hosted LLM / VLM blocks: OpenAI, Anthropic Claude and Google Gemini (``client``: what they share; ``prompts``:
what each task type asks)."""

from services.core.workflows.catalogue import llm as catalogue
from services.worker.workflows.blocks.base import BlockFactory
from services.worker.workflows.blocks.llm.anthropic import ClaudeBlockV1, ClaudeBlockV2
from services.worker.workflows.blocks.llm.gemini import GeminiBlockV1, GeminiBlockV2
from services.worker.workflows.blocks.llm.openai import OpenAiBlock, OpenAiBlockV3

BLOCKS: dict[str, BlockFactory] = {
    catalogue.OPEN_AI_V2: OpenAiBlock,
    catalogue.OPEN_AI_V3: OpenAiBlockV3,
    catalogue.CLAUDE_V1: ClaudeBlockV1,
    catalogue.CLAUDE_V2: ClaudeBlockV2,
    catalogue.GEMINI_V1: GeminiBlockV1,
    catalogue.GEMINI_V2: GeminiBlockV2,
}
