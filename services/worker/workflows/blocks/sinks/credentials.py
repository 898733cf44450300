"""Registering sink secrets so nothing reports or logs them (which values are secrets:
``services.core.workflows.secrets``). Registered strings go to the environment's
``secrets`` (the executor and the logs redact them) and are removed from every message a sink returns.

httpx logs each request's URL (query included) at INFO; a filter on its logger removes the secrets
registered in this process from those lines.
"""

import logging
import threading
from collections.abc import Iterable

from services.core.redaction import redact_text
from services.core.workflows.secrets import is_secret_name, secret_strings, secrets_in_mapping, secrets_in_url
from services.worker.workflows.blocks.base import BlockEnvironment

_REGISTERED: set[str] = set()  # every sink secret of this process, for the httpx log filter
_REGISTERED_LOCK = threading.Lock()


def register(env: BlockEnvironment, secrets: Iterable[str]) -> None:
    """Adds each non-empty secret to ``env.secrets`` once."""
    for secret in secrets:
        if secret and secret not in env.secrets:
            env.secrets.append(secret)
            with _REGISTERED_LOCK:
                _REGISTERED.add(secret)


def redact(env: BlockEnvironment, text: str) -> str:
    """``text`` without URL credentials, secret query values and the registered secrets."""
    # Longest first, so a secret that contains another is removed whole.
    return redact_text(text, tuple(sorted(env.secrets, key=len, reverse=True)))


class _LogRedaction(logging.Filter):
    """Rewrites a record's message without URL credentials and registered secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _REGISTERED_LOCK:
            secrets = tuple(sorted(_REGISTERED, key=len, reverse=True))
        record.msg, record.args = redact_text(record.getMessage(), secrets), None
        return True


logging.getLogger("httpx").addFilter(_LogRedaction())

__all__ = ["is_secret_name", "redact", "register", "secret_strings", "secrets_in_mapping", "secrets_in_url"]
