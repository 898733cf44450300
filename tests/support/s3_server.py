"""An S3 endpoint of our own on a real loopback socket (stdlib ``http.server``), for ``s3_sink``'s tests.

It takes PUT Object, path style (``/<bucket>/<key>``), and records every PUT it accepts: the bucket, the key
(decoded), the raw path, the headers and the body. Before accepting one it checks what S3 checks without the
secret key: the ``Authorization`` header is a well-formed SigV4 header for S3 (``AWS4-HMAC-SHA256
Credential=<id>/<date>/<region>/s3/aws4_request, SignedHeaders=..., Signature=<64 hex>``), whose signed
headers are sorted, present in the request and include ``host``, ``x-amz-content-sha256`` and ``x-amz-date``
(and ``x-amz-security-token`` when the request has one), whose date is ``x-amz-date``'s; the access key id
is the one it knows; ``x-amz-content-sha256`` is the body's SHA-256; the bucket exists. A request that
fails a check is answered as S3 answers it, an XML error document (``AuthorizationHeaderMalformed``,
``InvalidAccessKeyId`` echoing the id as S3 does, ``XAmzContentSHA256Mismatch``, ``NoSuchBucket``), and
recorded in ``refusals``. ``fail_next`` queues errors to answer whatever comes next (``SlowDown``,
``InternalError``, ``AccessDenied``, ...). The signature itself is not verified: the signer's own tests
check it against AWS's published values.
"""

import hashlib
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key_id>[^/\s,]+)/(?P<date>\d{8})/(?P<region>[A-Za-z0-9_-]+)/s3/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9-]+(?:;[a-z0-9-]+)*), Signature=(?P<signature>[0-9a-f]{64})")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_REQUIRED_SIGNED = ("host", "x-amz-content-sha256", "x-amz-date")


@dataclass(frozen=True)
class StoredObject:
    """One PUT the server accepted."""

    bucket: str
    key: str
    raw_path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def authorization(self) -> dict[str, str]:
        """The Authorization header's parts: key_id, date, region, signed, signature."""
        match = _AUTHORIZATION.fullmatch(self.headers["authorization"])
        assert match is not None
        return match.groupdict()


@dataclass(frozen=True)
class Refusal:
    path: str
    code: str
    headers: dict[str, str]


class S3Failure(Exception):
    def __init__(self, status: int, code: str, message: str, extra: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra or {}


class FakeS3:
    """S3's PUT Object on ``127.0.0.1``: ``url`` is the endpoint, ``buckets`` those that exist, ``access_key_id``
    the one key it knows."""

    def __init__(self, access_key_id: str, buckets: tuple[str, ...] = ("camera-results",)) -> None:
        self.access_key_id = access_key_id
        self.buckets = set(buckets)
        self.puts: list[StoredObject] = []  # every accepted PUT, in order
        self.refusals: list[Refusal] = []
        self._queued: list[tuple[int, str, str]] = []
        self._changed = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                # Recorded before the answer goes: a client that got its answer finds its request recorded.
                try:
                    stored = server._accept(self.path, headers, body)
                except S3Failure as failure:
                    with server._changed:
                        server.refusals.append(Refusal(self.path, failure.code, headers))
                        server._changed.notify_all()
                    self._answer(failure.status, _error_document(failure, self.path), "application/xml")
                    return
                with server._changed:
                    server.puts.append(stored)
                    server._changed.notify_all()
                self._answer(200, b"", None, etag=f'"{hashlib.md5(body).hexdigest()}"')

            def _answer(self, status: int, body: bytes, content_type: str | None, etag: str | None = None) -> None:
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                if etag:
                    self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(self, status: int, code: str, message: str, times: int = 1) -> None:
        """The next ``times`` requests are answered with this error (before any check)."""
        with self._changed:
            self._queued.extend([(status, code, message)] * times)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, StoredObject]:
        """Each key's latest upload under ``prefix``, as the bucket now holds them."""
        with self._changed:
            return {put.key: put for put in self.puts if put.bucket == bucket and put.key.startswith(prefix)}

    def wait_for(self, count: int, timeout: float = 10.0) -> list[StoredObject]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.puts) >= count, timeout), (self.puts, self.refusals)
            return list(self.puts)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _accept(self, raw_path: str, headers: dict[str, str], body: bytes) -> StoredObject:
        with self._changed:
            queued = self._queued.pop(0) if self._queued else None
        if queued is not None:
            raise S3Failure(*queued)
        _check_authorization(headers)
        key_id = headers["authorization"].split("Credential=", 1)[1].split("/", 1)[0]
        if key_id != self.access_key_id:
            raise S3Failure(403, "InvalidAccessKeyId",
                            "The AWS Access Key Id you provided does not exist in our records.",
                            {"AWSAccessKeyId": key_id})
        if headers.get("x-amz-content-sha256") != hashlib.sha256(body).hexdigest():
            raise S3Failure(400, "XAmzContentSHA256Mismatch",
                            "The provided 'x-amz-content-sha256' header does not match what was computed.")
        path = urlsplit(raw_path).path
        bucket, _, key = unquote(path[1:]).partition("/")
        if bucket not in self.buckets:
            raise S3Failure(404, "NoSuchBucket", "The specified bucket does not exist", {"BucketName": bucket})
        if not key:
            raise S3Failure(400, "InvalidRequest", "A PUT needs an object key")
        return StoredObject(bucket, key, path, headers, body)


def _check_authorization(headers: dict[str, str]) -> None:
    def malformed(why: str) -> S3Failure:
        return S3Failure(400, "AuthorizationHeaderMalformed", f"The authorization header is malformed; {why}")

    match = _AUTHORIZATION.fullmatch(headers.get("authorization", ""))
    if match is None:
        raise malformed("it is not AWS4-HMAC-SHA256 Credential=<id>/<date>/<region>/s3/aws4_request, "
                        "SignedHeaders=<names>, Signature=<64 hex digits>")
    signed = match["signed"].split(";")
    if signed != sorted(set(signed)):
        raise malformed("the signed headers are not sorted and unique")
    needed = [*_REQUIRED_SIGNED, *(["x-amz-security-token"] if "x-amz-security-token" in headers else [])]
    if missing := [name for name in needed if name not in signed]:
        raise malformed(f"{', '.join(missing)} must be signed")
    if absent := [name for name in signed if name not in headers]:
        raise malformed(f"signed headers {', '.join(absent)} are not in the request")
    amz_date = headers["x-amz-date"]
    if _AMZ_DATE.fullmatch(amz_date) is None or amz_date[:8] != match["date"]:
        raise malformed(f"the credential's date {match['date']} is not x-amz-date's {amz_date!r}")


def _error_document(failure: S3Failure, resource: str) -> bytes:
    extra = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in failure.extra.items())
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{failure.code}</Code><Message>{escape(failure.message)}</Message>{extra}"
            f"<Resource>{escape(resource)}</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>").encode()
