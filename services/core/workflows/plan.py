"""A compiled workflow: what the manager checked at INIT and the worker executes per frame.

JSON-serialisable (it travels in the Celery task's payload). Step parameters are literals with
every ``WorkflowParameter`` already substituted, or selectors into the frame's runtime values:
``$inputs.<image or video metadata input>``, ``$steps.<step>.<output>`` and ``$steps.<step>.*``.
Steps are in an order where every step comes after what it reads.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class PlanStep(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: str  # the block's canonical name, e.g. "roboflow_core/line_counter@v2"
    params: dict[str, Any]  # canonical field name -> literal or selector (nested for nested fields)
    # Flow-control steps that must let this step through on a frame (continue_if, rate_limiter, ...).
    gates: list[str] = Field(default_factory=list)
    # How many list levels deep the step runs: 0 once per frame, 1 once per crop/slice, ...
    dimensionality: int = 0


class PlanOutput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    selector: str
    coordinates_system: Literal["own", "parent"] = "parent"


class WorkflowPlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    image_input: str  # the WorkflowImage input that receives the video frame
    # Other inputs that are resolved per frame: WorkflowImage inputs beyond the first get the frame
    # too; WorkflowVideoMetadata inputs get the frame's metadata.
    image_inputs: list[str] = Field(default_factory=list)
    metadata_inputs: list[str] = Field(default_factory=list)
    steps: list[PlanStep]
    outputs: list[PlanOutput]

    def step(self, name: str) -> PlanStep:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def model_ids(self) -> list[str]:
        """Every model the workflow's model steps name (the worker loads them before it starts)."""
        found: list[str] = []
        for step in self.steps:
            model_id = step.params.get("model_id")
            if isinstance(model_id, str) and not model_id.startswith("$") and model_id not in found:
                found.append(model_id)
        return found
