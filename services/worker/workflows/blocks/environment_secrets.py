"""``roboflow_core/environment_secrets_store@v1``: secrets for other steps (a Slack token, an SMTP password) from
the worker's environment instead of the workflow's definition.

Only the variables the operator allows are readable (``WORKER_WORKFLOW_SECRETS``, their values taken when the
worker started: ``BlockEnvironment.environment_secrets``), never the rest of the worker's environment (its
Redis URL, the operator's own tokens). The manager cannot know a worker's environment, so a variable that is
not allowed, or allowed but not set, fails the step on each frame with a message naming it (never a value).

Each value read is registered as a secret (redacted from step errors, sink messages and logs) and flows as a
:class:`SecretText`: a plain string to the blocks it feeds, ``***`` in the frame's outputs.
"""

from typing import Any

from services.core.workflows.catalogue.formatters import secret_output
from services.core.workflows.plan import PlanStep
from services.worker.workflows.blocks.base import SECRETS_SETTING, BlockEnvironment
from services.worker.workflows.blocks.sinks import credentials
from services.worker.workflows.values import SecretText


class EnvironmentSecretsStore:
    def __init__(self, step: PlanStep, env: BlockEnvironment) -> None:
        self._store = env.environment_secrets
        # Registered now, so that whatever fails before this step runs already hides them.
        credentials.register(env, [self._store.values[name] for name in step.params["variables_storing_secrets"]
                                   if name in self._store.allowed and name in self._store.values])

    def run(self, variables_storing_secrets: list[str]) -> dict[str, Any]:
        refused = [name for name in variables_storing_secrets if name not in self._store.allowed]
        if refused:
            raise ValueError(f"environment variable(s) {', '.join(map(repr, refused))} may not be read by workflows "
                             f"on this worker (the operator allows them in {SECRETS_SETTING})")
        unset = [name for name in variables_storing_secrets if name not in self._store.values]
        if unset:
            raise ValueError(f"environment variable(s) {', '.join(map(repr, unset))} are allowed in "
                             f"{SECRETS_SETTING} but not set on this worker")
        return {secret_output(name): SecretText(self._store.values[name]) for name in variables_storing_secrets}
