"""The Workflows language: block catalogue, kinds, compiler and the compiled plan (no heavy imports)."""

from services.core.workflows.compiler import compile_workflow
from services.core.workflows.plan import PlanOutput, PlanStep, WorkflowPlan

__all__ = ["PlanOutput", "PlanStep", "WorkflowPlan", "compile_workflow"]
