"""roboflow_core/s3_sink@v1 against an S3 endpoint of our own on a real loopback socket (tests/support/s3_server.py):
object keys and content types, path-style requests signed with SigV4 (well formed, the body's hash), append-log
rotation, JSON lines and CSV headers, images as JPEG, S3's XML errors surfaced, retries of a busy store only,
the sinks' outbound-network policy (when the step runs and on every connection), and the credentials kept out
of messages and logs."""

import hashlib
import logging
import socket
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from services.core.networks import DestinationRefusedError, NetworkPolicy
from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import NETWORKS_SETTING, BlockEnvironment, SinkSettings
from services.worker.workflows.blocks.sinks import sigv4
from services.worker.workflows.blocks.sinks.s3 import DOWN_BACKOFF_S, S3Sink
from services.worker.workflows.blocks.sinks.s3_request import ObjectStore, error_of
from services.worker.workflows.values import VideoMetadata, WorkflowImage
from tests.support.s3_server import FakeS3
from tests.worker.workflows.sink_support import FakeClock, closed_port, definition, make_env

KEY_ID, SECRET, TOKEN = "AKIDS3SINKTEST", "s3-sink-Secret/Key+42", "session-token-for-the-sink"
BUCKET = "camera-results"
NOW = 1_767_225_600.25
CREDENTIAL_INPUTS = ({"type": "WorkflowParameter", "name": "key_id"}, {"type": "WorkflowParameter", "name": "secret"},
                     {"type": "WorkflowParameter", "name": "token"})


@pytest.fixture
def s3() -> Iterator[FakeS3]:
    server = FakeS3(KEY_ID, (BUCKET,))
    yield server
    server.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def env(s3: FakeS3, clock: FakeClock) -> BlockEnvironment:
    return make_env(clock, s3_endpoint_url=s3.url)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retries' waits, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(S3Sink, "pause", staticmethod(recorded.append))
    return recorded


def sink(**fields: Any) -> dict[str, Any]:
    return {"type": "roboflow_core/s3_sink@v1", "name": "s3", "content": "$steps.csv.csv_content",
            "output_mode": "separate_files", "bucket_name": BUCKET, "aws_access_key_id": "$inputs.key_id",
            "aws_secret_access_key": "$inputs.secret", **fields}


def build(env: BlockEnvironment, **fields: Any) -> tuple[Any, dict[str, Any]]:
    """The sink (content fed by a csv_formatter's selector), its keys given as parameters."""
    workflow = definition(sink(**fields), *CREDENTIAL_INPUTS)
    workflow["steps"].insert(0, {"type": "roboflow_core/csv_formatter@v1", "name": "csv",
                                 "columns_data": {"camera": "gate"}})
    step = compile_workflow(workflow, parameters={"key_id": KEY_ID, "secret": SECRET, "token": TOKEN}).step("s3")
    return REGISTRY[step.type](step, env), dict(step.params)


def run(block: Any, params: dict[str, Any], content: Any, **values: Any) -> dict[str, Any]:
    result: dict[str, Any] = block.run(**{**params, "content": content, **values})
    return result


def stamp(when: float = NOW) -> str:
    return datetime.fromtimestamp(when).strftime("%Y_%m_%d_%H_%M_%S_%f")


def picture(pixels: np.ndarray) -> WorkflowImage:
    return WorkflowImage.frame(pixels, "image", VideoMetadata("cam", 0, datetime(2026, 1, 1)))


def saved(key: str) -> dict[str, Any]:
    return {"error_status": False, "message": f"Data saved successfully to s3://{BUCKET}/{key}"}


@pytest.mark.parametrize(("file_type", "content_type"), [
    ("csv", "text/csv"), ("json", "application/json"), ("txt", "text/plain")])
def test_separate_files_upload_each_content_as_a_new_object(env: BlockEnvironment, s3: FakeS3, clock: FakeClock,
                                                           file_type: str, content_type: str) -> None:
    block, params = build(env, file_type=file_type, s3_prefix="logs/detections/", file_name_prefix="run")

    first = run(block, params, "camera,people\ngate,3\n")
    clock.now += 1.5
    second = run(block, params, "camera,people\ngate,4\n")

    keys = [f"logs/detections/run_{stamp()}.{file_type}", f"logs/detections/run_{stamp(NOW + 1.5)}.{file_type}"]
    assert (first, second) == (saved(keys[0]), saved(keys[1]))
    one, two = s3.wait_for(2)
    assert [(one.bucket, one.key, one.body), (two.bucket, two.key, two.body)] == [
        (BUCKET, keys[0], b"camera,people\ngate,3\n"), (BUCKET, keys[1], b"camera,people\ngate,4\n")]
    assert one.headers["content-type"] == content_type
    assert one.raw_path == f"/{BUCKET}/{keys[0]}", "path style: /<bucket>/<key>"


def test_without_a_prefix_the_key_is_the_file_name(env: BlockEnvironment, s3: FakeS3) -> None:
    block, params = build(env, file_type="txt")

    assert run(block, params, "hello") == saved(f"workflow_output_{stamp()}.txt")
    assert s3.wait_for(1)[0].key == f"workflow_output_{stamp()}.txt"


def test_each_request_is_signed_with_sigv4_for_the_region_and_carries_the_body_hash(
        env: BlockEnvironment, s3: FakeS3) -> None:
    block, params = build(env, file_type="txt", aws_region="eu-west-1", aws_session_token="$inputs.token")

    run(block, params, "hello")
    [put] = s3.wait_for(1)

    authorization = put.authorization
    assert authorization["key_id"] == KEY_ID and authorization["region"] == "eu-west-1"
    assert authorization["date"] == sigv4.amz_date(NOW)[:8] and put.headers["x-amz-date"] == sigv4.amz_date(NOW)
    assert authorization["signed"] == "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
    assert put.headers["x-amz-content-sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert put.headers["x-amz-security-token"] == TOKEN
    assert put.headers["host"] == s3.url.removeprefix("http://")


def test_the_signature_is_the_signers_for_the_request_as_sent(env: BlockEnvironment, s3: FakeS3) -> None:
    block, params = build(env, file_type="txt", s3_prefix="a b", file_name_prefix="c+d")
    run(block, params, "x")
    [put] = s3.wait_for(1)

    # Signed again from what the server received: the canonical URI is the raw path, as sent, encoded once.
    expected = sigv4.sign("PUT", put.raw_path, "", {name: put.headers[name] for name in put.authorization["signed"]
                                                     .split(";")}, put.headers["x-amz-content-sha256"],
                          sigv4.Credentials(KEY_ID, SECRET), "us-east-1", "s3", put.headers["x-amz-date"])
    assert put.authorization["signature"] == expected.signature
    assert put.raw_path == f"/{BUCKET}/a%20b/c%2Bd_{stamp()}.txt"


def test_the_region_defaults_to_the_operators(s3: FakeS3, clock: FakeClock) -> None:
    block, params = build(make_env(clock, s3_endpoint_url=s3.url, s3_region="ap-south-1"), file_type="txt")

    run(block, params, "x")

    assert s3.wait_for(1)[0].authorization["region"] == "ap-south-1"


def test_without_an_endpoint_the_store_is_aws_regional_one() -> None:
    assert ObjectStore.of(SinkSettings(), "eu-west-1") == ObjectStore("https://s3.eu-west-1.amazonaws.com", "eu-west-1")
    assert ObjectStore.of(SinkSettings(), None).endpoint == "https://s3.us-east-1.amazonaws.com"
    assert ObjectStore.of(SinkSettings(s3_endpoint_url="http://minio:9000/"), "x").endpoint == "http://minio:9000"


def test_keys_with_spaces_and_non_ascii_characters_arrive_whole(env: BlockEnvironment, s3: FakeS3) -> None:
    block, params = build(env, file_type="txt", s3_prefix="résultats/caméra 1", file_name_prefix="porte$nord")

    result = run(block, params, "x")

    key = f"résultats/caméra 1/porte$nord_{stamp()}.txt"
    assert result == saved(key)
    assert s3.wait_for(1)[0].key == key


def test_append_log_uploads_the_whole_log_under_one_key_and_rotates_after_max_entries(
        env: BlockEnvironment, s3: FakeS3, clock: FakeClock) -> None:
    block, params = build(env, file_type="txt", output_mode="append_log", max_entries_per_file=3)

    for index in range(5):
        run(block, params, f"entry-{index}")
        clock.now += 1

    puts = s3.wait_for(5)
    first, second = f"workflow_output_{stamp()}.txt", f"workflow_output_{stamp(NOW + 3)}.txt"
    assert [put.key for put in puts] == [first] * 3 + [second] * 2
    assert [put.body for put in puts] == [b"entry-0\n", b"entry-0\nentry-1\n", b"entry-0\nentry-1\nentry-2\n",
                                          b"entry-3\n", b"entry-3\nentry-4\n"]
    assert {key: put.body for key, put in s3.objects(BUCKET).items()} == {
        first: b"entry-0\nentry-1\nentry-2\n", second: b"entry-3\nentry-4\n"}


def test_append_log_writes_json_lines(env: BlockEnvironment, s3: FakeS3) -> None:
    block, params = build(env, file_type="json", output_mode="append_log")

    run(block, params, '{\n  "people": 3\n}')
    result = run(block, params, '{"people": 4, "where": "gate"}')

    [put] = s3.objects(BUCKET).values()
    assert result == saved(put.key) and put.key == f"workflow_output_{stamp()}.jsonl"
    assert put.headers["content-type"] == "application/x-ndjson"
    assert put.body == b'{"people": 3}\n{"people": 4, "where": "gate"}\n'


def test_append_log_refuses_content_that_is_not_json_and_uploads_nothing(env: BlockEnvironment, s3: FakeS3) -> None:
    block, params = build(env, file_type="json", output_mode="append_log")

    assert run(block, params, "people: 3") == {"error_status": True, "message": "Invalid JSON content"}
    assert s3.puts == [] and s3.refusals == []


def test_append_log_keeps_one_csv_header_per_object(env: BlockEnvironment, s3: FakeS3, clock: FakeClock) -> None:
    block, params = build(env, output_mode="append_log", max_entries_per_file=2)

    for people in (3, 4, 5):
        run(block, params, f"camera,people\ngate,{people}\n")
        clock.now += 1

    assert sorted(put.body for put in s3.objects(BUCKET).values()) == [
        b"camera,people\ngate,3\ngate,4\n", b"camera,people\ngate,5\n"]


def test_a_new_log_starts_when_the_prefix_changes(env: BlockEnvironment, s3: FakeS3, clock: FakeClock) -> None:
    block, params = build(env, file_type="txt", output_mode="append_log")

    run(block, params, "a", s3_prefix="north")
    clock.now += 1
    run(block, params, "b", s3_prefix="south")

    assert {key: put.body for key, put in s3.objects(BUCKET).items()} == {
        f"north/workflow_output_{stamp()}.txt": b"a\n", f"south/workflow_output_{stamp(NOW + 1)}.txt": b"b\n"}


def test_objects_made_within_one_microsecond_do_not_replace_each_other(env: BlockEnvironment, s3: FakeS3) -> None:
    block, params = build(env, file_type="txt")

    for text in ("a", "b", "c"):
        run(block, params, text)

    assert [put.key for put in s3.wait_for(3)] == [f"workflow_output_{stamp()}{suffix}.txt"
                                                   for suffix in ("", "_1", "_2")]


def test_an_image_is_uploaded_as_one_jpeg_object(env: BlockEnvironment, s3: FakeS3) -> None:
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[10:30, 20:40] = (0, 0, 255)
    block, params = build(env, file_type="csv", s3_prefix="frames", file_name_prefix="gate")

    result = run(block, params, picture(pixels))

    key = f"frames/gate_{stamp()}.jpg"
    assert result == saved(key)
    [put] = s3.wait_for(1)
    assert put.key == key and put.headers["content-type"] == "image/jpeg"
    decoded = cv2.imdecode(np.frombuffer(put.body, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == pixels.shape and int(decoded[20, 30, 2]) > 200


def test_an_image_cannot_be_appended_to_a_log(env: BlockEnvironment, s3: FakeS3) -> None:
    block, params = build(env, output_mode="append_log")

    with pytest.raises(ValueError, match="set output_mode to separate_files"):
        run(block, params, picture(np.zeros((8, 8, 3), np.uint8)))
    assert s3.puts == []


@pytest.mark.parametrize(("fields", "values", "message"), [
    ({}, {"bucket_name": "missing-bucket"},
     "An error occurred (NoSuchBucket) when calling the PutObject operation: The specified bucket does not exist"),
    ({"aws_access_key_id": "AKIDNOTKNOWN"}, {},
     "An error occurred (InvalidAccessKeyId) when calling the PutObject operation: The AWS Access Key Id you "
     "provided does not exist in our records."),
])
def test_s3s_error_documents_are_the_message_and_are_not_retried(
        env: BlockEnvironment, s3: FakeS3, waits: list[float], fields: dict[str, Any], values: dict[str, Any],
        message: str) -> None:
    block, params = build(env, file_type="txt", **fields)

    assert run(block, params, "x", **values) == {"error_status": True, "message": message}
    assert len(s3.refusals) == 1 and s3.puts == [] and waits == []


@pytest.mark.parametrize(("status", "code", "message"), [
    (403, "AccessDenied", "Access Denied"),  # in the reference's list of errors it does not retry
    (400, "InvalidArgument", "Invalid Argument"),  # a 4xx the reference would retry: retrying cannot help either
    (301, "PermanentRedirect", "The bucket you are attempting to access must be addressed using the specified "
                               "endpoint."),  # another region's bucket: not followed
])
def test_a_refusal_is_not_retried(env: BlockEnvironment, s3: FakeS3, waits: list[float], status: int, code: str,
                                  message: str) -> None:
    s3.fail_next(status, code, message)
    block, params = build(env, file_type="txt")

    result = run(block, params, "x")

    assert result == {"error_status": True,
                      "message": f"An error occurred ({code}) when calling the PutObject operation: {message}"}
    assert waits == [] and s3.puts == [] and len(s3.refusals) == 1


def test_an_answer_without_an_error_document_is_named_by_its_status() -> None:
    assert str(error_of(413, "Request Entity Too Large", b"")) == (
        "An error occurred (413) when calling the PutObject operation: Request Entity Too Large")
    assert str(error_of(400, "Bad Request", b"<Error><Code>A&amp;B</Code><Message>x &lt; y</Message></Error>")) == (
        "An error occurred (A&B) when calling the PutObject operation: x < y")


def test_a_busy_store_is_tried_again_after_growing_waits(env: BlockEnvironment, s3: FakeS3,
                                                         waits: list[float]) -> None:
    s3.fail_next(503, "SlowDown", "Please reduce your request rate.", times=2)
    block, params = build(env, file_type="txt")

    assert run(block, params, "x") == saved(f"workflow_output_{stamp()}.txt")
    assert waits == [1.0, 2.0] and len(s3.refusals) == 2 and len(s3.puts) == 1


def test_after_three_retries_the_last_error_is_the_message(env: BlockEnvironment, s3: FakeS3,
                                                           waits: list[float]) -> None:
    s3.fail_next(500, "InternalError", "We encountered an internal error. Please try again.", times=4)
    block, params = build(env, file_type="txt")

    result = run(block, params, "x")

    assert result == {"error_status": True, "message": "An error occurred (InternalError) when calling the PutObject "
                                                       "operation: We encountered an internal error. Please try again."}
    assert waits == [1.0, 2.0, 4.0] and len(s3.refusals) == 4


def test_a_store_that_failed_every_try_is_left_alone_for_the_back_off_and_the_log_loses_nothing(
        env: BlockEnvironment, s3: FakeS3, clock: FakeClock, waits: list[float]) -> None:
    # A live pipeline is not held for the retries on every frame while the store is down: after one upload failed
    # its four tries, the next frames' uploads are not tried for the back-off (their entries stay in the log).
    block, params = build(env, file_type="txt", output_mode="append_log")
    s3.fail_next(503, "ServiceUnavailable", "Service is unavailable.", times=4)

    first = run(block, params, "one")
    clock.now += 10
    skipped = run(block, params, "two")

    assert first["error_status"] is True and waits == [1.0, 2.0, 4.0] and len(s3.refusals) == 4
    assert skipped["error_status"] is True and "tried again in 20 s" in skipped["message"]
    assert len(s3.refusals) == 4 and s3.puts == [] and waits == [1.0, 2.0, 4.0]  # not tried, not waited for

    clock.now += DOWN_BACKOFF_S
    assert run(block, params, "three")["error_status"] is False
    assert s3.puts[-1].body == b"one\ntwo\nthree\n"  # the frames of the outage are in the log


def test_a_refused_upload_does_not_start_the_back_off(env: BlockEnvironment, s3: FakeS3, waits: list[float]) -> None:
    block, params = build(env, file_type="txt")
    s3.fail_next(403, "AccessDenied", "Access Denied")

    assert run(block, params, "x")["error_status"] is True
    assert run(block, params, "y")["error_status"] is False  # a refusal says nothing of the store's health


def test_an_unreachable_endpoint_is_tried_four_times(clock: FakeClock, waits: list[float]) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    block, params = build(make_env(clock, s3_endpoint_url=endpoint), file_type="txt")

    result = run(block, params, "x")

    assert result["error_status"] is True
    assert result["message"].startswith(f"Could not reach the S3 endpoint {endpoint}: ConnectError")
    assert waits == [1.0, 2.0, 4.0]


def test_an_endpoint_outside_the_allowed_networks_fails_the_step(s3: FakeS3, clock: FakeClock) -> None:
    env = make_env(clock, s3_endpoint_url=s3.url,
                   allowed_networks=NetworkPolicy.parse("10.0.0.0/8", NETWORKS_SETTING))
    block, params = build(env, file_type="txt")

    with pytest.raises(DestinationRefusedError, match=r"127\.0\.0\.1"):
        run(block, params, "x")
    assert s3.puts == [] and s3.refusals == []


def test_an_endpoint_host_not_allowed_fails_the_step(s3: FakeS3, clock: FakeClock) -> None:
    block, params = build(make_env(clock, s3_endpoint_url=s3.url, allowed_hosts=("minio.internal",)), file_type="txt")

    with pytest.raises(ValueError, match=r"host '127\.0\.0\.1' is not among the hosts sinks may reach"):
        run(block, params, "x")
    assert s3.puts == []


def test_the_connection_is_checked_again_so_a_name_rebound_reaches_nothing(
        s3: FakeS3, clock: FakeClock, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = socket.getaddrinfo, []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "s3.rebinding.test":
            return real(host, port, *args, **kwargs)
        calls.append(host)  # the step's check sees 127.0.0.1, the connection 127.0.0.2
        return real("127.0.0.1" if len(calls) == 1 else "127.0.0.2", port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    env = make_env(clock, s3_endpoint_url=s3.url.replace("127.0.0.1", "s3.rebinding.test"),
                   allowed_networks=NetworkPolicy.parse("127.0.0.1/32", NETWORKS_SETTING))
    block, params = build(env, file_type="txt")

    result = run(block, params, "x")

    assert result["error_status"] is True and result["message"].startswith("Could not connect to the S3 endpoint:")
    assert "127.0.0.2" in result["message"] and waits == [] and s3.puts == []


def test_credentials_never_reach_messages_or_logs(env: BlockEnvironment, s3: FakeS3, waits: list[float],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    s3.fail_next(403, "AccessDenied", f"key {KEY_ID} with secret {SECRET} and token {TOKEN} is denied")
    block, params = build(env, file_type="txt", aws_session_token="$inputs.token")

    result = run(block, params, "x")

    assert result == {"error_status": True, "message": "An error occurred (AccessDenied) when calling the PutObject "
                                                       "operation: key *** with secret *** and token *** is denied"}
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "is denied" in logged and not any(secret in logged for secret in (KEY_ID, SECRET, TOKEN))
    assert {KEY_ID, SECRET, TOKEN} <= set(env.secrets)


def test_credentials_a_step_gives_at_run_time_are_registered_too(env: BlockEnvironment, s3: FakeS3) -> None:
    block, params = build(env, file_type="txt")

    run(block, params, "x", aws_access_key_id=KEY_ID, aws_secret_access_key="from-a-secrets-step")

    assert "from-a-secrets-step" in env.secrets and len(s3.wait_for(1)) == 1


@pytest.mark.parametrize("missing", [{"aws_access_key_id": None}, {"aws_secret_access_key": ""}])
def test_keys_a_step_leaves_empty_are_an_error_and_nothing_is_sent(env: BlockEnvironment, s3: FakeS3,
                                                                  missing: dict[str, Any]) -> None:
    block, params = build(env, file_type="txt")

    assert run(block, params, "x", **missing) == {
        "error_status": True, "message": "S3 sink requires aws_access_key_id and aws_secret_access_key"}
    assert s3.puts == [] and s3.refusals == []


@pytest.mark.parametrize(("values", "error"), [
    ({"bucket_name": "a/b"}, "bucket_name 'a/b' is not an S3 bucket name"),
    ({"aws_region": "us east"}, "aws_region 'us east' is not a region name"),
    ({"s3_prefix": "logs/../other"}, "has a '.' or '..' segment"),
    ({"file_name_prefix": "x" * 1100}, "longer than 1024 bytes"),
    ({"s3_prefix": "a\nb"}, "control characters"),
    ({"file_type": "xml"}, "file_type must be one of csv, json, txt"),
    ({"content": 5}, "content must be a string or an image, got int"),
    ({"output_mode": "append_log", "max_entries_per_file": "0"}, "max_entries_per_file must be an integer >= 1"),
])
def test_values_a_selector_gives_are_checked_when_the_step_runs(env: BlockEnvironment, s3: FakeS3,
                                                                values: dict[str, Any], error: str) -> None:
    block, params = build(env, file_type="txt")

    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(".", r"\.")):
        run(block, params, values.pop("content", "x"), **values)
    assert s3.puts == [] and s3.refusals == []


def test_the_fake_store_refuses_a_malformed_authorization_and_a_body_that_is_not_the_hashed_one(s3: FakeS3) -> None:
    # The checks the block's requests pass above do refuse: a request signed wrong, or whose body changed.
    good_hash = hashlib.sha256(b"signed body").hexdigest()
    scope = f"{KEY_ID}/20260101/us-east-1/s3/aws4_request"
    headers = {"x-amz-date": "20260101T000000Z", "x-amz-content-sha256": good_hash}
    cases = [
        ({"authorization": "Bearer x"}, b"signed body", "AuthorizationHeaderMalformed"),
        ({"authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host;x-amz-date, "
                           f"Signature={'0' * 64}"}, b"signed body", "AuthorizationHeaderMalformed"),
        ({"authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host;x-amz-content-sha256;"
                           f"x-amz-date, Signature={'0' * 64}"}, b"another body", "XAmzContentSHA256Mismatch"),
    ]
    with httpx.Client() as client:
        for extra, body, code in cases:
            answer = client.put(f"{s3.url}/{BUCKET}/key.txt", content=body, headers={**headers, **extra})
            assert answer.status_code == 400 and f"<Code>{code}</Code>" in answer.text
    assert [refusal.code for refusal in s3.refusals] == [case[2] for case in cases] and s3.puts == []
