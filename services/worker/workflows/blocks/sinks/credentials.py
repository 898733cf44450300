"""Which sink inputs are secrets, and registering them so nothing reports or logs them.

A value is a secret when its field says so (``sender_email_password``), when it sits under a key named
like a credential (``Authorization``, ``api_key``, ``X-Token``, ...) in headers or query parameters, or
when it is a URL's password or secret query value. Registered strings go to the environment's
``secrets`` (the executor and the logs redact them) and are removed from every message a sink returns.

httpx logs each request's URL (query included) at INFO; a filter on its logger removes the secrets
registered in this process from those lines.
"""

import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from services.core.redaction import redact_text
from services.worker.workflows.blocks.base import BlockEnvironment

_SECRET_NAME = re.compile(
    r"auth|api[-_]?key|apikey|token|secret|passw|pwd|signature|cookie|credential|session|private[-_]?key",
    re.IGNORECASE,
)
# "Bearer abc", "Basic abc", "Token abc": the credential after the scheme is a secret on its own too.
_AUTH_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*\s+(?P<credential>\S.*)$")


def is_secret_name(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


def secrets_in_url(url: Any) -> Iterator[str]:
    """The password (and whole user info) and the secret query values of a URL."""
    if not isinstance(url, str) or _is_selector(url):
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        yield userinfo
        if ":" in userinfo:
            yield userinfo.split(":", 1)[1]
    yield from secrets_in_mapping(dict(parse_qsl(parts.query)))


def secrets_in_mapping(values: Any) -> Iterator[str]:
    """The values under credential-like keys of headers or query parameters (selectors left out)."""
    if not isinstance(values, Mapping):
        return
    for key, value in values.items():
        if isinstance(key, str) and is_secret_name(key):
            yield from _secret_strings(value)


def _secret_strings(value: Any) -> Iterator[str]:
    if isinstance(value, list | tuple):
        for item in value:
            yield from _secret_strings(item)
        return
    if value is None or isinstance(value, bool):
        return
    text = value if isinstance(value, str) else str(value)
    if not text or _is_selector(text):
        return
    yield text
    if (match := _AUTH_SCHEME.match(text)) is not None:
        yield match["credential"]


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


def _is_selector(text: str) -> bool:
    return text.startswith("$inputs.") or text.startswith("$steps.")


class _LogRedaction(logging.Filter):
    """Rewrites a record's message without URL credentials and registered secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _REGISTERED_LOCK:
            secrets = tuple(sorted(_REGISTERED, key=len, reverse=True))
        record.msg, record.args = redact_text(record.getMessage(), secrets), None
        return True


logging.getLogger("httpx").addFilter(_LogRedaction())
