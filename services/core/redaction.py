"""Removes credentials from video references and free text before anything reports or logs them."""

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"

# scheme://user:password@host or scheme://token@host, anywhere in a text.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s]+)@")
# key=value query parameters that commonly carry secrets.
_SECRET_PARAM = re.compile(
    r"(?P<key>(?:api[_-]?key|token|access[_-]?token|password|passwd|pwd|secret|auth|signature|sig)=)"
    r"(?P<value>[^&\s\"']+)",
    re.IGNORECASE,
)


def redact_reference(reference: str | int) -> str | int:
    """A video reference with user:password and secret query values replaced by ``***``.

    Camera indices and plain paths come back unchanged.
    """
    if isinstance(reference, int):
        return reference
    if "://" not in reference:
        return reference
    try:
        parts = urlsplit(reference)
    except ValueError:
        return redact_text(reference)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{REDACTED}:{REDACTED}@{host}" if ":" in userinfo or user else f"{REDACTED}@{host}"
    query = _SECRET_PARAM.sub(lambda m: m.group("key") + REDACTED, parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Free text (an error message, a log line) with URL credentials and known secrets removed."""
    text = _USERINFO.sub(lambda m: m.group("scheme") + f"{REDACTED}@", text)
    text = _SECRET_PARAM.sub(lambda m: m.group("key") + REDACTED, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
