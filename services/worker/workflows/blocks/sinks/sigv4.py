"""AWS Signature Version 4 (``AWS4-HMAC-SHA256``), the header form: what ``s3_sink`` signs its uploads with.

The algorithm as AWS documents it ("Create a signed AWS API request", and for S3 "Authenticating
Requests: Using the Authorization Header"), in four steps:

1. the canonical request: the method, the canonical URI (the path, URI-encoded), the canonical query
   (names and values URI-encoded, sorted), the canonical headers (lower-case names, values trimmed and
   their inner runs of spaces collapsed, sorted by name, each ``name:value`` on a line), the signed
   header names (``;``-separated) and the payload's SHA-256 in hex, one per line;
2. the string to sign: the algorithm, the request's time (``YYYYMMDDTHHMMSSZ``, UTC), the credential
   scope (``date/region/service/aws4_request``) and the canonical request's SHA-256, one per line;
3. the signing key: HMAC-SHA256 chained from ``"AWS4" + secret`` over the date, the region, the service
   and ``aws4_request``;
4. the signature, HMAC-SHA256 of the string to sign under that key (hex), in the ``Authorization``
   header with the access key id, the scope and the signed header names.

The canonical URI is the path as sent, encoded once: S3's rule (other services encode it twice, a case
this module leaves to its caller, who gives the canonical URI). Pure functions, no I/O; checked against
AWS's published test vectors (``tests/worker/workflows/test_sigv4.py``).
"""

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SPACES = re.compile(r" +")

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access key (its id and secret) and, for temporary credentials, the session token."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Signed:
    """Every step's result, so that each can be compared with a published value."""

    canonical_request: str
    string_to_sign: str
    signed_headers: str
    signature: str
    authorization: str


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def amz_date(when: float) -> str:
    """``when`` (seconds since the epoch) as SigV4 writes a time: ``20150830T123600Z``."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")


def uri_encode(text: str, keep_slash: bool = False) -> str:
    """Every byte of ``text``'s UTF-8 but the unreserved characters (``A-Za-z0-9-._~``) as ``%XX`` (upper
    case); ``/`` kept when ``keep_slash`` (a path)."""
    return quote(text, safe="/" if keep_slash else "")


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """``name=value`` pairs, each encoded, sorted by name then value, joined with ``&``."""
    encoded = sorted((uri_encode(name), uri_encode(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_headers(headers: Headers) -> tuple[str, str]:
    """(the canonical header lines, each ending with a newline; the signed header names). A name given twice
    has its values joined with commas, in the order given."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    values: dict[str, list[str]] = {}
    for name, value in items:
        values.setdefault(name.strip().lower(), []).append(_SPACES.sub(" ", value.strip()))
    names = sorted(values)
    lines = "".join(f"{name}:{','.join(values[name])}\n" for name in names)
    return lines, ";".join(names)


def canonical_request(method: str, canonical_uri: str, query: str, headers: Headers,
                      payload_hash: str) -> tuple[str, str]:
    """(the canonical request, the signed header names)."""
    lines, signed = canonical_headers(headers)
    return "\n".join((method, canonical_uri, query, lines, signed, payload_hash)), signed


def scope(date: str, region: str, service: str) -> str:
    return f"{date}/{region}/{service}/{TERMINATOR}"


def string_to_sign(when: str, credential_scope: str, request: str) -> str:
    return "\n".join((ALGORITHM, when, credential_scope, sha256_hex(request.encode("utf-8"))))


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret_access_key}".encode()
    for part in (date, region, service, TERMINATOR):
        key = _hmac(key, part)
    return key


def sign(method: str, canonical_uri: str, query: str, headers: Headers, payload_hash: str,
         credentials: Credentials, region: str, service: str, when: str) -> Signed:
    """Signs a request whose ``headers`` (those to sign: ``host`` and ``x-amz-date`` among them, equal to
    ``when``) are sent as given. ``query``: the canonical query (:func:`canonical_query`)."""
    request, signed = canonical_request(method, canonical_uri, query, headers, payload_hash)
    credential_scope = scope(when[:8], region, service)
    to_sign = string_to_sign(when, credential_scope, request)
    signature = _hmac(signing_key(credentials.secret_access_key, when[:8], region, service), to_sign).hex()
    authorization = (f"{ALGORITHM} Credential={credentials.access_key_id}/{credential_scope}, "
                     f"SignedHeaders={signed}, Signature={signature}")
    return Signed(request, to_sign, signed, signature, authorization)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
