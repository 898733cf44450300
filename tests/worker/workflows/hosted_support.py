"""What the hosted-model block tests share (hosted LLMs, OpenRouter, OpenAI-compatible servers, Cloud Vision): a
worker environment whose API URLs are the fake's, a frame, and one step built as the worker builds it."""

from typing import Any

import cv2
import numpy as np

from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment, SinkSettings
from services.worker.workflows.values import WorkflowImage
from tests.support.llm_providers import FakeLlmApis
from tests.worker.workflows.sink_support import InlineBackground, NoModels
from tests.worker.workflows.visualization_support import workflow_image

# A field each task type needs, for steps built to test every task type.
TASK_FIELDS: dict[str, dict[str, Any]] = {
    "unconstrained": {"prompt": "How many people?"},
    "visual-question-answering": {"prompt": "How many people?"},
    "classification": {"classes": ["cat", "dog"]},
    "multi-label-classification": {"classes": ["cat", "dog"]},
    "object-detection": {"classes": ["cat", "dog"]},
    "structured-answering": {"output_structure": {"count": "how many people"}},
}


def make_env(apis: FakeLlmApis, **settings: Any) -> BlockEnvironment:
    """A worker's environment calling ``apis`` (``settings``: other SinkSettings, e.g. the allowed networks)."""
    return BlockEnvironment(source_id=0, models=NoModels(), background=InlineBackground(),
                            sinks=SinkSettings(**{**apis.settings(), **settings}))


def orange_block_frame() -> WorkflowImage:
    pixels = np.zeros((480, 640, 3), np.uint8)
    cv2.rectangle(pixels, (100, 100), (300, 400), (0, 200, 255), -1)
    return workflow_image(pixels)


def build_step(step: dict[str, Any], env: BlockEnvironment, name: str = "llm", output: str = "output",
               **parameters: Any) -> tuple[Any, dict[str, Any]]:
    """``step`` (its type and fields) compiled in a workflow of its own as ``name``, its ``parameters`` given at
    INIT, and built as the worker builds it: the block and the fields it is called with."""
    inputs = [{"type": "WorkflowImage", "name": "image"},
              *({"type": "WorkflowParameter", "name": parameter} for parameter in parameters)]
    definition = {"version": "1.0", "inputs": inputs, "steps": [{"name": name, **step}],
                  "outputs": [{"type": "JsonField", "name": "output", "selector": f"$steps.{name}.{output}"}]}
    planned = compile_workflow(definition, parameters=parameters).step(name)
    return REGISTRY[planned.type](planned, env), dict(planned.params)
