"""The object store ``s3_sink`` uploads to: its endpoint, one signed PUT Object, and S3's error answers.

The endpoint is the operator's (``SinkSettings.s3_endpoint_url``: MinIO, Ceph, any S3-compatible store), or
AWS's regional one, ``https://s3.<region>.amazonaws.com``; the workflow names the region at most, never a host.
Requests are path style, ``<endpoint>/<bucket>/<key>``, the bucket and key URI-encoded once (S3's canonical
URI is the path as sent), and signed with AWS Signature Version 4 (``sigv4``): the headers signed are
``content-type``, ``host``, ``x-amz-content-sha256`` (the body's SHA-256: S3 checks the body against it),
``x-amz-date`` and, with temporary credentials, ``x-amz-security-token``.

Every connection is checked as the webhook's are (``SinkSettings.allowed_hosts`` and ``allowed_networks``,
``webhook_request.checked_client``): AWS is not reachable until the operator allows public networks.
Redirects are not followed (S3 answers 301 to a request sent to another region's endpoint: a failure).

Any answer but 2xx is an :class:`S3Error` carrying S3's error ``Code`` and ``Message`` (its XML error
document; the HTTP status and reason when the answer has none), written as boto3 writes it ("An error
occurred (AccessDenied) when calling the PutObject operation: Access Denied"), which the reference's
messages are. Nothing else of the document is kept: S3 echoes the access key id and the string to sign in
some of them.
"""

import re
from dataclasses import dataclass
from xml.sax.saxutils import unescape

import httpx

from services.core.workflows.catalogue.sinks import S3_BUCKET, S3_REGION
from services.worker.workflows.blocks.base import SinkSettings
from services.worker.workflows.blocks.sinks import sigv4
from services.worker.workflows.blocks.sinks.webhook_request import checked_client, url_host, url_port

S3_TIMEOUT_S = 10.0  # per request: a frame waits at most a few of these (the retries)
MAX_KEY_BYTES = 1024  # S3's longest object key, in UTF-8 bytes
# The reference's (boto3 client errors it does not retry): the request itself is wrong, retrying cannot help.
NON_RETRYABLE_CODES = frozenset({"InvalidAccessKeyId", "AccessDenied", "NoSuchBucket", "InvalidBucketName",
                                 "SignatureDoesNotMatch", "AuthFailure"})
RETRYABLE_CODES = frozenset({"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling"})
_ERROR_BODY_LIMIT = 64 * 1024  # an error document is a few hundred bytes; read no more than this of one
_ERROR_FIELD = re.compile(r"<(Code|Message)>([^<]*)</(?:Code|Message)>")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class S3Error(RuntimeError):
    """An answer other than 2xx: S3's error code and message (the HTTP status and reason without a document)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code = status, code
        super().__init__(f"An error occurred ({code}) when calling the PutObject operation: {message}")

    @property
    def retryable(self) -> bool:
        """Whether trying again may succeed: the store is busy or failing (5xx, 429, SlowDown), not refusing."""
        if self.code in NON_RETRYABLE_CODES:
            return False
        return self.status >= 500 or self.status == 429 or self.code in RETRYABLE_CODES


def check_bucket(bucket: str) -> str:
    if S3_BUCKET.fullmatch(bucket) is None:
        raise ValueError(f"bucket_name {bucket!r} is not an S3 bucket name (3 to 255 letters, digits, '.', '-' or "
                         "'_', starting with a letter or digit)")
    return bucket


def check_region(region: str) -> str:
    if S3_REGION.fullmatch(region) is None:
        raise ValueError(f"aws_region {region!r} is not a region name such as 'us-east-1'")
    return region


def check_key(key: str) -> str:
    """An object key this sink may write: at most 1024 bytes, no control characters, and no ``.`` or ``..``
    segment (an HTTP client would remove those from the path: the object would land elsewhere)."""
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"the object key made of s3_prefix and file_name_prefix is longer than {MAX_KEY_BYTES} "
                         "bytes")
    if _CONTROL.search(key):
        raise ValueError("s3_prefix and file_name_prefix must not contain control characters")
    if any(segment in (".", "..") for segment in key.split("/")):
        raise ValueError(f"the object key {key!r} has a '.' or '..' segment (from s3_prefix or file_name_prefix)")
    return key


@dataclass(frozen=True, slots=True)
class ObjectStore:
    """One S3 endpoint and the region its requests are signed for."""

    endpoint: str  # http(s)://host[:port][/path], no trailing slash
    region: str

    @classmethod
    def of(cls, sinks: SinkSettings, region: str | None) -> "ObjectStore":
        """The operator's endpoint (or AWS's for the region); ``region``: the step's, else the operator's."""
        chosen = check_region(region or sinks.s3_region)
        endpoint = sinks.s3_endpoint_url or f"https://s3.{chosen}.amazonaws.com"
        return cls(endpoint.rstrip("/"), chosen)

    @property
    def host(self) -> str:
        return url_host(self.endpoint)

    @property
    def port(self) -> int:
        return url_port(self.endpoint)

    def put(self, sinks: SinkSettings, credentials: sigv4.Credentials, bucket: str, key: str, body: bytes,
            content_type: str, now: float) -> None:
        """Uploads ``body`` as ``bucket``/``key`` once; raises :class:`S3Error`, an ``httpx`` error, or the
        connection's refusal (``DestinationRefusedError``)."""
        url = httpx.URL(f"{self.endpoint}/{sigv4.uri_encode(bucket)}/{sigv4.uri_encode(key, keep_slash=True)}")
        when = sigv4.amz_date(now)
        payload_hash = sigv4.sha256_hex(body)
        headers = {"host": url.netloc.decode("ascii"), "content-type": content_type,
                   "x-amz-content-sha256": payload_hash, "x-amz-date": when}
        if credentials.session_token:
            headers["x-amz-security-token"] = credentials.session_token
        signed = sigv4.sign("PUT", url.raw_path.decode("ascii"), "", headers, payload_hash, credentials,
                            self.region, "s3", when)
        with checked_client(sinks, S3_TIMEOUT_S) as client, client.stream(
                "PUT", url, content=body, headers={**headers, "authorization": signed.authorization}) as response:
            if not response.is_success:
                raise error_of(response.status_code, response.reason_phrase, _read_some(response))


def error_of(status: int, reason: str, body: bytes) -> S3Error:
    """S3's answer as an error: the ``Code`` and ``Message`` of its XML error document, if it has one."""
    fields: dict[str, str] = {}
    for name, value in _ERROR_FIELD.findall(body.decode("utf-8", "replace")):
        fields.setdefault(name, unescape(value, {"&quot;": '"', "&apos;": "'"}).strip())
    code = fields.get("Code") or str(status)
    return S3Error(status, code, fields.get("Message") or reason or "no message")


def _read_some(response: httpx.Response) -> bytes:
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= _ERROR_BODY_LIMIT:
            break
    return body[:_ERROR_BODY_LIMIT]
