"""The Workflows query language at run time: operation chains and conditions on workflow values.

``apply_operations`` transforms a value (detections, images, classifications, numbers, strings,
sequences) through a chain of operations; ``evaluate_statement`` decides a condition. The structure
of both is checked at INIT by ``services.core.workflows.query_language``; what still fails here (a
value of the wrong kind, an undefined operand) raises :class:`QueryLanguageError` naming its place.
"""

from services.worker.workflows.operations.base import QueryLanguageError
from services.worker.workflows.operations.chain import apply_operations
from services.worker.workflows.operations.statements import evaluate_statement

__all__ = ["QueryLanguageError", "apply_operations", "evaluate_statement"]
