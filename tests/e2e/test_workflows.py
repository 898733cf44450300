"""Users' Workflows through the whole system: TCP manager, Celery worker, real Redis, the real models on
real video. Every definition is in the published JSON format (tests/support/workflow_definitions.py)."""

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest
import zxingcpp

from services.worker.models.ocr_build import build_ocr_models
from tests.manager.fakes import call
from tests.support import ocr as plates
from tests.support import workflow_definitions as wf
from tests.support.codes import box_of, linear_code, paste, qr_code
from tests.support.google_vision import TextBlock, annotate_response
from tests.support.llm_providers import FakeLlmApis
from tests.support.pipelines import read_frames, write_clip
from tests.support.redis_server import RedisServer
from tests.support.s3_server import FakeS3
from tests.support.stack import Stack, running_stack
from tests.support.waiting import wait_until
from tests.worker.workflows.sink_support import (
    Certificate,
    FakeSlack,
    HttpRecorder,
    SmtpRecorder,
    make_certificate,
)

VTEST = Path("data/media/vtest.avi")
LINE = [[0, 300], [768, 300]]  # across the whole frame: vtest's people walk up and down through it
ENV_SLACK_TOKEN = "xoxb-e2e-from-the-workers-environment"  # the worker's E2E_SLACK_TOKEN (WORKER_WORKFLOW_SECRETS)
S3_KEY_ID, S3_SECRET = "AKIDE2ES3SINK", "e2e-s3-Secret/Access+Key"  # the one key the test's S3 endpoint knows


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """The test SMTP server's certificate: the worker trusts it as its CA (SSL_CERT_FILE)."""
    return make_certificate(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture(scope="module")
def file_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sink-files")


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    """A Slack Web API of our own on 127.0.0.1 (the worker's WORKER_WORKFLOW_SLACK_API_URL)."""
    server = FakeSlack()
    yield server
    server.close()


@pytest.fixture(scope="module")
def twilio() -> Iterator[HttpRecorder]:
    """A Twilio REST API of our own on 127.0.0.1 (the worker's WORKER_WORKFLOW_TWILIO_API_URL)."""
    server = HttpRecorder()
    server.status = 201
    server.respond = lambda request: {"sid": "SM1", "status": "queued"}
    yield server
    server.close()


@pytest.fixture(scope="module")
def llm_apis() -> Iterator[FakeLlmApis]:
    """OpenAI's, Anthropic's and Gemini's APIs of our own on 127.0.0.1 (WORKER_WORKFLOW_*_API_URL)."""
    server = FakeLlmApis()
    yield server
    server.close()


@pytest.fixture(scope="module")
def s3() -> Iterator[FakeS3]:
    """An S3 endpoint of our own on 127.0.0.1 (the worker's WORKER_WORKFLOW_S3_ENDPOINT_URL)."""
    server = FakeS3(S3_KEY_ID, ("camera-results",))
    yield server
    server.close()


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory, certificate: Certificate,
          file_root: Path, slack: FakeSlack, twilio: HttpRecorder, llm_apis: FakeLlmApis,
          s3: FakeS3) -> Iterator[Stack]:
    with running_stack(redis_server.url) as running:
        running.start_manager(MANAGER_FILE_ROOTS=f"data,{tmp_path_factory.getbasetemp()}")
        running.start_worker_with_env("cpu", "pipelines.cpu", concurrency=2, env={
            "SSL_CERT_FILE": str(certificate.cert), "WORKER_WORKFLOW_FILE_ROOT": str(file_root),
            "WORKER_WORKFLOW_SLACK_API_URL": f"{slack.url}/api", "WORKER_WORKFLOW_TWILIO_API_URL": twilio.url,
            "WORKER_WORKFLOW_S3_ENDPOINT_URL": s3.url,
            "WORKER_WORKFLOW_SECRETS": "E2E_SLACK_TOKEN", "E2E_SLACK_TOKEN": ENV_SLACK_TOKEN,
            **{f"WORKER_WORKFLOW_{name.upper()}": url for name, url in llm_apis.settings().items()}})
        yield running


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """vtest.avi's first 150 frames (people cross the line at y=300 in them)."""
    return str(write_clip(VTEST, tmp_path_factory.mktemp("clips") / "vtest-150.mp4", 150))


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """vtest.avi's first 20 frames, for the workflows that run a model several times per frame."""
    return str(write_clip(VTEST, tmp_path_factory.mktemp("clips") / "vtest-20.mp4", 20))


def _ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["response"]["status"] == "success", reply
    return dict(reply["response"])


def run_to_end(stack: Stack, payload: dict[str, Any], timeout: float = 120) -> tuple[str, list[dict[str, Any]]]:
    """INIT, then every result entry until the file pipeline ended by itself."""
    reply = call(stack.port, payload)
    pipeline_id = reply["pipeline_id"]
    assert pipeline_id and reply["response"]["status"] == "success", reply
    entries: list[dict[str, Any]] = []

    def ended() -> bool:
        entries.extend(_ok(call(stack.port, {"type": "consume_result", "pipeline_id": pipeline_id,
                                             "excluded_fields": [], "max_entries": 500})).get("entries", []))
        listed = _ok(call(stack.port, {"type": "list_pipelines"}))["pipelines"]
        return pipeline_id not in listed

    wait_until(ended, timeout=timeout, interval=0.3)
    entries.extend(_ok(call(stack.port, {"type": "consume_result", "pipeline_id": pipeline_id,
                                         "excluded_fields": [], "max_entries": 1000})).get("entries", []))
    return pipeline_id, [entry["outputs"][0] for entry in entries if entry["outputs"][0] is not None]


def test_tracking_and_line_counting_with_an_annotated_image(stack: Stack, clip: str) -> None:
    _, outputs = run_to_end(stack, wf.init(clip, wf.counting(LINE)))

    assert len(outputs) == 150
    counts_in = [o["count_in"] for o in outputs]
    counts_out = [o["count_out"] for o in outputs]
    assert counts_in == sorted(counts_in) and counts_out == sorted(counts_out), "counts never go down"
    assert counts_in[0] == counts_out[0] == 0
    assert 1 <= counts_in[-1] + counts_out[-1] <= 30, (counts_in[-1], counts_out[-1])  # people cross, not crowds
    tracked = [p for o in outputs for p in o["tracked"]["predictions"]]
    assert tracked and all(p["class"] == "person" and p["tracker_id"] >= 1 for p in tracked)
    assert len({p["tracker_id"] for p in tracked}) >= 3
    jpeg = base64.b64decode(outputs[-1]["annotated"]["value"])
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert frame is not None and frame.shape == (576, 768, 3)
    assert outputs[-1]["annotated"]["type"] == "base64" and "workflow_errors" not in outputs[-1]


def test_sort_ocsort_and_botsort_track_people_side_by_side(stack: Stack, short_clip: str) -> None:
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.trackers_side_by_side()))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o]
    for name in ("sort", "ocsort", "botsort"):
        tracked = [p for o in outputs for p in o[name]["predictions"]]
        track_ids = {p["tracker_id"] for p in tracked}
        assert tracked and all(p["class"] == "person" and p["tracker_id"] >= 0 for p in tracked), name
        assert 3 <= len(track_ids) <= len(tracked) / 5, (name, len(track_ids), len(tracked))  # ids last
        first_sightings = [p["tracker_id"] for o in outputs for p in o[f"{name}_new"]["predictions"]]
        assert sorted(first_sightings) == sorted(track_ids), name  # each id new exactly once


@pytest.fixture(scope="module")
def tracked_three_ways(stack: Stack, clip: str) -> list[dict[str, Any]]:
    """The clip's outputs of one run of detect -> ByteTrack -> class lock, stabilizer and heatmap, which the three
    tests below read (one pipeline run for the three: the suite's time)."""
    return run_to_end(stack, wf.init(clip, wf.tracked_three_ways()))[1]


def test_track_class_lock_holds_each_tracks_class_and_confidence(tracked_three_ways: list[dict[str, Any]]) -> None:
    outputs = tracked_three_ways

    assert len(outputs) == 150 and not [o for o in outputs if "workflow_errors" in o]
    raw: dict[int, list[tuple[str, float]]] = {}
    held: dict[int, list[tuple[str, float]]] = {}
    for output in outputs:
        assert [p["tracker_id"] for p in output["locked"]["predictions"]] == [
            p["tracker_id"] for p in output["tracked"]["predictions"]]
        for into, key in ((raw, "tracked"), (held, "locked")):
            for p in output[key]["predictions"]:
                into.setdefault(p["tracker_id"], []).append((p["class"], p["confidence"]))
    long_tracks = [track for track, seen in raw.items() if len(seen) >= 10]
    assert len(long_tracks) >= 3
    for track in long_tracks:  # locked on its third frame (every detection votes): one class and confidence
        [(held_class, held_confidence)] = set(held[track][2:])
        votes = raw[track][:3]
        if len({name for name, _ in votes}) == 1:  # three votes for one class: that class, their mean
            assert held_class == votes[0][0]
            assert held_confidence == pytest.approx(sum(confidence for _, confidence in votes) / 3, abs=1e-4)
    assert any(len({conf for _, conf in raw[track][2:]}) > 1 for track in long_tracks)  # the model's vary


def test_stabilize_detections_steadies_the_tracked_boxes_and_keeps_their_ids(
        tracked_three_ways: list[dict[str, Any]]) -> None:
    outputs = tracked_three_ways

    assert len(outputs) == 150 and not [o for o in outputs if "workflow_errors" in o]
    last_seen: dict[int, tuple[int, str]] = {}  # tracker id -> (frame, detection id) of its last detection
    changes: dict[str, list[float]] = {"tracked": [], "stable": []}  # |size change| of a track seen on both frames
    filled_in = 0
    for frame, output in enumerate(outputs):
        raw, stable = output["tracked"]["predictions"], output["stable"]["predictions"]
        # The frame's detections first, in their order, every field but the box kept.
        assert [(p["tracker_id"], p["detection_id"], p["class"], p["confidence"]) for p in stable[:len(raw)]] == [
            (p["tracker_id"], p["detection_id"], p["class"], p["confidence"]) for p in raw]
        for p in stable[len(raw):]:  # then the tracks missed lately (within the window of 3), as last seen
            seen_on, detection_id = last_seen[p["tracker_id"]]
            assert 1 <= frame - seen_on <= 3 and p["detection_id"] == detection_id, (frame, p)
            filled_in += 1
        if frame:
            for key, now in (("tracked", raw), ("stable", stable[:len(raw)])):
                before = {p["tracker_id"]: p for p in outputs[frame - 1][key]["predictions"]}
                changes[key].extend(abs(p[size] - before[p["tracker_id"]][size]) for p in now
                                    if last_seen.get(p["tracker_id"], (-1, ""))[0] == frame - 1
                                    for size in ("width", "height"))
        last_seen.update({p["tracker_id"]: (frame, p["detection_id"]) for p in raw})
    raw_jitter, stable_jitter = (float(np.mean(changes[key])) for key in ("tracked", "stable"))
    assert len(changes["tracked"]) >= 500 and filled_in >= 1, (len(changes["tracked"]), filled_in)
    assert stable_jitter < 0.85 * raw_jitter, (stable_jitter, raw_jitter)  # boxes averaged with their previous


def test_two_models_combined_then_filtered_per_class(stack: Stack, short_clip: str) -> None:
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.combined_and_filtered()))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o]
    for output in outputs:
        big, small, both = (output[name]["predictions"] for name in ("big", "small", "both"))
        assert [p["detection_id"] for p in both] == [p["detection_id"] for p in big + small]
        wanted = [p["detection_id"] for p in both if p["confidence"] >= (0.6 if p["class"] == "person" else 0.3)]
        assert [p["detection_id"] for p in output["sure"]["predictions"]] == wanted
    assert any(len(o["sure"]["predictions"]) < len(o["both"]["predictions"]) for o in outputs)  # some people unsure


def test_an_upside_down_camera_turned_upright_sees_what_an_upright_one_sees(
        stack: Stack, short_clip: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    upside_down = tmp_path_factory.mktemp("clips") / "vtest-20-upside-down.mp4"
    capture = cv2.VideoCapture(short_clip)
    writer = cv2.VideoWriter(str(upside_down), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (768, 576))
    try:
        while (read := capture.read())[0]:
            writer.write(cv2.flip(read[1], -1))
    finally:
        writer.release()
        capture.release()
    people = {**wf.detection_only(), "steps": [wf.detect(confidence=0.3, class_filter=["person"])]}
    upright_people = [o["predictions"]["predictions"] for o in run_to_end(stack, wf.init(short_clip, people))[1]]
    _, outputs = run_to_end(stack, wf.init(str(upside_down), wf.upside_down_camera()))

    assert len(outputs) == len(upright_people) == 20 and not [o for o in outputs if "workflow_errors" in o]
    matched = total = 0
    for output, expected in zip(outputs, upright_people, strict=True):
        found = output["predictions"]["predictions"]
        assert output["predictions"]["image"] == {"width": 768, "height": 576}
        total += len(expected)
        matched += sum(any(abs(p["x"] - q["x"]) < 6 and abs(p["y"] - q["y"]) < 6 for q in found) for p in expected)
    assert total >= 40 and matched >= 0.8 * total, (matched, total)  # the same people where they are upright


def test_classical_cv_counts_the_shapes_and_the_moving_blobs_opencv_finds(stack: Stack, short_clip: str) -> None:
    """Grayscale -> blur -> Otsu -> contours and background subtraction -> morphology -> contours, no model: the
    counts are OpenCV's on the same decoded frames, the threshold and the mask images are those masks."""
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.classical_cv_shapes_and_motion()))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o]
    capture = cv2.VideoCapture(short_clip)
    background = cv2.createBackgroundSubtractorMOG2(history=30, varThreshold=16, detectShadows=True)
    kernel = np.ones((5, 5), np.uint8)
    try:
        for index, output in enumerate(outputs):
            ok, frame = capture.read()
            assert ok
            gray = cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (5, 5), 0)
            binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]
            shapes = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
            mask = background.apply(frame)
            cleaned = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel)
            moving = cv2.findContours(cleaned, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
            assert (output["shapes"], output["moving"]) == (len(shapes), len(moving)), index
            assert output["shapes"] > 0 and (index == 0 or output["moving"] > 0)  # people walk in every frame
            drawn = {name: cv2.imdecode(np.frombuffer(base64.b64decode(output[name]["value"]), np.uint8),
                                        cv2.IMREAD_GRAYSCALE) for name in ("binary", "mask")}
            assert drawn["binary"].shape == (576, 768)
            assert ((drawn["binary"] < 40) | (drawn["binary"] > 215)).mean() > 0.99  # black and white (a JPEG)
            assert (np.abs(drawn["binary"].astype(int) - binary) > 127).mean() < 0.005
            assert np.abs(drawn["mask"].astype(int) - mask).mean() < 2.0
    finally:
        capture.release()


def test_a_frame_undistorted_its_halves_stitched_and_a_qr_code_made(stack: Stack, short_clip: str) -> None:
    """camera-calibration gives OpenCV's undistortion of the frame, stitch_images puts the frame's left and right
    60 % back together at the frame's width, qr_code_generator's image reads back as its text."""
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.imaging("https://roboflow.com/workflows")))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o]
    camera = np.array([[700.0, 0, 384.0], [0, 700.0, 288.0], [0, 0, 1]])
    distortion = np.array([-0.1, 0.01, 0.0, 0.0, 0.0])
    new_camera = cv2.getOptimalNewCameraMatrix(camera, distortion, (768, 576), 1, (768, 576))[0]
    capture = cv2.VideoCapture(short_clip)
    try:
        for index, output in enumerate(outputs):
            ok, frame = capture.read()
            assert ok
            image = {name: cv2.imdecode(np.frombuffer(base64.b64decode(output[name]["value"]), np.uint8),
                                        cv2.IMREAD_COLOR) for name in ("calibrated", "stitched", "qr_code")}
            expected = cv2.undistort(frame, camera, distortion, None, new_camera)
            assert image["calibrated"].shape == (576, 768, 3)
            assert np.abs(image["calibrated"].astype(int) - expected).mean() < 3, index
            assert np.abs(image["calibrated"].astype(int) - frame).mean() > 3 * np.abs(
                image["calibrated"].astype(int) - expected).mean()  # the undistortion changed the frame
            height, width = image["stitched"].shape[:2]
            assert abs(width - 768) <= 8 and abs(height - 576) <= 8, (index, width, height)
            assert [code.text for code in zxingcpp.read_barcodes(image["qr_code"])] == [
                "https://roboflow.com/workflows"]
            assert output["qr_code"]["video_metadata"]["frame_number"] == output["calibrated"]["video_metadata"][
                "frame_number"]
    finally:
        capture.release()


def test_camera_focus_dominant_colour_and_the_gap_between_two_people_are_opencv_s(
        stack: Stack, short_clip: str) -> None:
    """camera_focus v2 (per person too), dominant_color -> pixel_color_count, distance_measurement between the two
    most confident people: the values are those computed here with OpenCV on the same decoded frames (a frame
    with fewer than two people fails the distance step, as the reference, and only it)."""
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.camera_checks()))

    assert len(outputs) == 20
    capture = cv2.VideoCapture(short_clip)
    try:
        for index, output in enumerate(outputs):
            ok, frame = capture.read()
            assert ok
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            sharpness = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3) ** 2
            sharpness += cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3) ** 2
            assert output["focus"] == pytest.approx(float(sharpness.mean()), rel=1e-5), index
            people = [[p["x"] - p["width"] / 2, p["y"] - p["height"] / 2, p["x"] + p["width"] / 2,
                       p["y"] + p["height"] / 2] for p in output["people"]["predictions"]]
            assert len(output["people_focus"]) == len(people) >= 1
            for (x1, y1, x2, y2), measured in zip(people, output["people_focus"], strict=True):
                region = sharpness[max(0, int(y1)):int(y2), max(0, int(x1)):int(x2)]
                assert measured == pytest.approx(float(region.mean()), rel=0.02), index
            red, green, blue = output["colour"]
            lower = np.clip(np.array([blue, green, red]) - 10, 0, 255).astype(float)
            upper = np.clip(np.array([blue, green, red]) + 10, 0, 255).astype(float)
            expected_pixels = cv2.countNonZero(cv2.inRange(frame, lower, upper))
            assert output["colour_pixels"] == expected_pixels and expected_pixels > 0.02 * 768 * 576, index
            aids = cv2.imdecode(np.frombuffer(base64.b64decode(output["aids"]["value"]), np.uint8), cv2.IMREAD_COLOR)
            assert aids.shape == frame.shape and aids[288, 384].min() > 200  # the white centre cross
            if len(people) < 2:
                [error] = output["workflow_errors"]
                assert error["step"] == "gap" and "not found" in error["error_message"] and output["gap_px"] is None
                continue
            assert "workflow_errors" not in output, index
            first, second = (np.round(box).astype(int).tolist() for box in people[:2])
            overlap = not (first[2] < second[0] or second[2] < first[0] or first[3] < second[1]
                           or second[3] < first[1])
            gap = 0 if overlap else max(second[0] - first[2], first[0] - second[2], 0)
            assert output["gap_px"] == gap and output["gap_cm"] == pytest.approx(gap / 10), index
    finally:
        capture.release()
    assert sum(o["gap_px"] is not None for o in outputs) >= 10 and any(o["gap_px"] for o in outputs)


def test_people_s_areas_and_ground_positions_and_the_last_frames_stacked(stack: Stack, short_clip: str) -> None:
    """mask_area_measurement on the detector's boxes (px², and m² at 50 px per metre), geotag_detection of each
    person under a camera 30 m up facing east at the parameters' position (worked out here from the camera's
    geometry), image_stack's last 3 frames at half size, newest first (against the same decoded frames)."""
    latitude, longitude = 51.5, -0.12
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.areas_places_and_frames(), latitude=latitude,
                                           longitude=longitude))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o]
    ground_width = 2 * 30 * np.tan(np.radians(73.7) / 2)  # metres across the 768 px frame
    frames = list(read_frames(Path(short_clip), 20))
    for index, output in enumerate(outputs):
        people = output["people"]["predictions"]
        for person in people:
            assert person["area_px"] == pytest.approx(person["width"] * person["height"], rel=1e-9), index
            assert person["area_converted"] == pytest.approx(person["area_px"] / 2500, rel=1e-9), index
        assert len(output["places"]) == len(people)
        for place, person in zip(output["places"], people, strict=True):
            right = (person["x"] - 384) / 768 * ground_width
            up = (288 - person["y"]) / 576 * ground_width * 576 / 768
            # Facing east: the image's top is east, its right south.
            expected = (latitude - right / 111320, longitude + up / (111320 * np.cos(np.radians(latitude))))
            assert (place["lat"], place["lon"]) == (pytest.approx(expected[0], abs=1e-7),
                                                    pytest.approx(expected[1], abs=1e-7)), index
            assert (place["class"], place["confidence"], place["pixel_x"], place["pixel_y"]) == (
                "person", round(person["confidence"], 4), round(person["x"], 1), round(person["y"], 1))
        assert output["geojson"]["features"] == [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [p["lon"], p["lat"]]},
             "properties": {"class": "person", "confidence": p["confidence"]}} for p in output["places"]]
        stacked = [cv2.imdecode(np.frombuffer(base64.b64decode(blob), np.uint8), cv2.IMREAD_COLOR)
                   for blob in output["frames"]]
        assert output["frames_count"] == len(stacked) == min(index + 1, 3)
        for age, image in enumerate(stacked):  # each the frame it should be (a JPEG of quality 75 of it), not another
            errors = [np.abs(image.astype(int) - cv2.resize(frame, (384, 288), interpolation=cv2.INTER_AREA)).mean()
                      for frame in frames]
            assert image.shape == (288, 384, 3) and int(np.argmin(errors)) == index - age, (index, age)
            assert errors[index - age] < 5, (index, age)
    assert sum(len(o["places"]) for o in outputs) >= 40  # vtest's people walk through every frame


def test_excluded_fields_drop_the_image_output(stack: Stack, clip: str) -> None:
    pipeline_id = call(stack.port, wf.init(clip, wf.counting(LINE)))["pipeline_id"]
    found: list[dict[str, Any]] = []

    def consumed() -> bool:
        reply = _ok(call(stack.port, {"type": "consume_result", "pipeline_id": pipeline_id,
                                      "excluded_fields": ["annotated", "tracked"]}))
        found.extend(output for output in reply["outputs"] if output)
        return bool(found)

    wait_until(consumed, timeout=60, interval=0.2)
    _ok(call(stack.port, {"type": "terminate", "pipeline_id": pipeline_id}))
    assert set(found[0]) == {"count_in", "count_out"}


def test_time_in_zone(stack: Stack, clip: str) -> None:
    zone = [[100, 100], [668, 100], [668, 476], [100, 476]]
    _, outputs = run_to_end(stack, wf.init(clip, wf.time_in_zone(zone)))

    timed = [p for o in outputs for p in o["timed"]["predictions"]]
    assert timed and all(100 <= p["x"] <= 668 and 100 <= p["y"] <= 476 for p in timed), "only inside the zone"
    by_track: dict[int, list[float]] = {}
    for prediction in timed:
        by_track.setdefault(prediction["tracker_id"], []).append(prediction["time_in_zone"])
    longest = max(by_track.values(), key=len)
    assert longest[0] == 0.0 and longest == sorted(longest) and longest[-1] > 1.0  # seconds of video


def test_motion_detection_finds_the_walking_people(stack: Stack, short_clip: str) -> None:
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.motion(history=5)))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o]
    assert not any(o["motion"] or o["alarm"] or o["moving"]["predictions"] for o in outputs[:5]), "still learning"
    motion = [o["motion"] for o in outputs]
    assert motion[5] is True and sum(motion) >= 12, motion
    before = [False, *motion[:-1]]  # the alarm: motion now, none on the frame before
    assert [o["alarm"] for o in outputs] == [now and not then for then, now in zip(before, motion, strict=True)]

    def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return (abs(a["x"] - b["x"]) * 2 < a["width"] + b["width"]
                and abs(a["y"] - b["y"]) * 2 < a["height"] + b["height"])

    for output in outputs[5:]:
        moving, people = output["moving"]["predictions"], output["people"]["predictions"]
        assert bool(moving) == output["motion"]
        assert all(m["class"] == "motion" and m["class_id"] == 0 and m["confidence"] == 1.0 for m in moving)
        assert not moving or any(overlap(m, person) for m in moving for person in people), "motion is people walking"


def test_qr_codes_and_barcodes_read_on_a_moving_label_and_the_qr_code_boxed(
        stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> None:
    url, ean = "https://example.com/line/7", "4006381333931"
    qr, bars = qr_code(url, 6), linear_code(zxingcpp.BarcodeFormat.EAN13, ean, module=3, height=90)
    clip = tmp_path_factory.mktemp("clips") / "codes-20.mp4"
    pasted: list[dict[str, tuple[float, float, float, float]]] = []  # per frame: text -> where it was drawn
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (640, 480))
    try:
        for index in range(20):  # the QR code moves right, the barcode left, 5 px a frame
            frame = np.full((480, 640, 3), 255, np.uint8)
            pasted.append({url: paste(frame, qr, 40 + 5 * index, 40), ean: paste(frame, bars, 280 - 5 * index, 330)})
            writer.write(frame)
    finally:
        writer.release()
    _, outputs = run_to_end(stack, wf.init(str(clip), wf.codes()))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o]
    for output, drawn in zip(outputs, pasted, strict=True):
        [found] = output["qr"]["predictions"]
        assert (found["data"], found["class"], found["confidence"]) == (url, "qr_code", 1.0)
        assert box_of(found) == pytest.approx(drawn[url], abs=3)
        read = {p["data"]: p for p in output["barcodes"]["predictions"]}  # every format: the QR code too
        assert set(read) == {url, ean} and {p["class"] for p in read.values()} == {"barcode"}
        assert box_of(read[ean])[:3] == pytest.approx(drawn[ean][:3], abs=3)  # the bottom: rows it was read on
        boxed = cv2.imdecode(np.frombuffer(base64.b64decode(output["boxed"]["value"]), np.uint8), cv2.IMREAD_COLOR)
        colour = boxed.max(axis=2).astype(int) - boxed.min(axis=2) > 60  # the box's colour, not black or white
        x1, y1, x2, y2 = (round(v) for v in drawn[url])
        assert colour[y1 - 1:y1 + 2, x1:x2].mean() > 0.9 and colour[y1 + 10:y2 - 10, x1 + 10:x2 - 10].mean() < 0.01
        assert colour[330:420, 280 - 95:640].mean() < 0.01, "the barcode is not drawn"


def test_a_licence_plate_is_read_by_pp_ocr_on_every_frame(
        stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> None:
    build_ocr_models(Path("data/models"), Path("data/downloads"))  # make setup's: cached, the worker's repository
    clip = tmp_path_factory.mktemp("clips") / "plate-8.mp4"
    inks = []  # per frame: where the plate's text was drawn
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (768, 576))
    try:
        for index, frame in enumerate(read_frames(VTEST, 8)):  # the plate moves right, 8 px a frame
            inks.append(plates.paste(frame, plates.plate("KX 4821"), 100 + 8 * index, 300))
            writer.write(frame)
    finally:
        writer.release()
    _, outputs = run_to_end(stack, wf.init(str(clip), wf.plate_reading()))  # about 0.3 s a frame on 2 cores

    assert len(outputs) == 8 and not [o for o in outputs if "workflow_errors" in o]
    for output, ink in zip(outputs, inks, strict=True):
        # The plate is a line of its own. vtest has no text, but the detector sometimes boxes a walking person
        # (at x > 500 in these frames), which the recogniser reads as a character, e.g. 人 ("person").
        assert "KX 4821" in output["text"].split("\n"), output["text"]
        [found] = [p for p in output["predictions"]["predictions"] if p["class"] == "KX 4821"]
        assert found["class_id"] == 0 and 0.5 < found["confidence"] <= 1
        assert plates.iou(box_of(found), ink) > 0.6
        assert all(p["x"] > 500 for p in output["predictions"]["predictions"] if p is not found)


def test_an_ocr_size_whose_model_is_not_registered_is_refused_at_init_naming_it(stack: Stack) -> None:
    before = _ok(call(stack.port, {"type": "list_pipelines"}))["pipelines"]

    reply = call(stack.port, wf.init(str(VTEST), wf.plate_reading(text_detection="medium")))

    assert reply["response"]["status"] == "failure" and reply["response"]["error_type"] == "not_found", reply
    message = reply["response"]["error_message"]
    assert "model 'pp-ocr/det-medium' is not in the repository" in message, message
    assert "python -m services.worker.models register-ocr pp-ocr/det-medium <model.onnx>" in message
    assert _ok(call(stack.port, {"type": "list_pipelines"}))["pipelines"] == before


def test_google_vision_ocr_s_text_blocks_are_boxed_labelled_and_stitched(stack: Stack, short_clip: str,
                                                                         llm_apis: FakeLlmApis) -> None:
    """google_vision_ocr@v1 calls the operator's Vision API (a fake answering two text blocks, right one first) on
    every frame: the text, its language and the blocks as detections that the visualisations draw and
    stitch_ocr_detections reads left to right; the key only in the API's header, never in outputs or status."""
    key = "AIza-e2e-vision-secret"
    llm_apis.vision = annotate_response([TextBlock.box("4821", (330, 200, 420, 240)),
                                         TextBlock.box("KX", (250, 200, 320, 240))], width=768, height=576)
    before = len(llm_apis.requests)
    try:
        pipeline_id, outputs = run_to_end(stack, wf.init(short_clip, wf.google_vision_text(), api_key=key))
    finally:
        llm_apis.vision = {"responses": [{}]}

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o], outputs[0]
    assert {(o["extracted_text"], o["language"], o["line"]) for o in outputs} == {("4821\nKX\n", "en", "KX 4821")}
    detections = outputs[0]["text_detections"]
    assert detections["image"] == {"width": 768, "height": 576}
    assert [(p["class"], p["class_id"], p["confidence"], p["x"], p["y"], p["width"], p["height"])
            for p in detections["predictions"]] == [("4821", 0, 1.0, 375, 220, 90, 40),
                                                    ("KX", 1, 1.0, 285, 220, 70, 40)]
    requests = [r for r in llm_apis.requests[before:] if r.provider == "google_vision"]
    assert len(requests) == 20 and {r.path for r in requests} == {"/v1/images:annotate"}
    assert {r.headers["x-goog-api-key"] for r in requests} == {key}
    [sent] = requests[0].json()["requests"]
    assert (sent["features"], sent["imageContext"]) == ([{"type": "TEXT_DETECTION"}], {"languageHints": ["en"]})
    frame = next(read_frames(Path(short_clip), 1)).astype(int)
    image = cv2.imdecode(np.frombuffer(base64.b64decode(sent["image"]["content"]), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == frame.shape and float(np.abs(image.astype(int) - frame).mean()) < 4, "the frame as a JPEG"
    drawn = cv2.imdecode(np.frombuffer(base64.b64decode(outputs[0]["text_visualised"]["value"]), np.uint8),
                         cv2.IMREAD_COLOR).astype(int)
    assert float(np.abs(drawn[198:203, 250:420] - frame[198:203, 250:420]).mean()) > 20, "the blocks' top edges"
    assert float(np.abs(drawn[400:500, 50:200] - frame[400:500, 50:200]).mean()) < 4, "nothing drawn elsewhere"
    status = json.dumps(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))
    assert key not in status and key not in json.dumps(outputs)


def test_path_deviation_its_reference_path_drawn_padded_and_merged_boxes(stack: Stack, short_clip: str) -> None:
    path = [[40, 560], [40, 100], [720, 100]]  # down the left edge, then across the top
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.path_deviation(path), path=path))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o]
    deviations = [p for o in outputs for p in o["deviations"]["predictions"]]
    assert deviations and all(p["path_deviation"] > 0 and p["tracker_id"] >= 1 for p in deviations)
    frame = cv2.imdecode(np.frombuffer(base64.b64decode(outputs[-1]["drawn"]["value"]), np.uint8), cv2.IMREAD_COLOR)
    blue, green, red = frame[330, 36:45].mean(axis=0)  # across the vertical leg, 9 pixels wide: red
    assert red > 180 and green < 90 and blue < 90, (blue, green, red)
    blue, green, red = frame[560:576, 36:45].mean(axis=(0, 1))  # below the path's end: the video, not the path
    assert not (red > 180 and green < 90 and blue < 90)
    for output in outputs:  # detection_offset: each box 10 px wider a side, 5 px taller, within the 768x576 frame
        people, padded = output["people"]["predictions"], output["padded"]["predictions"]
        assert len(people) == len(padded) > 0
        for person, box in zip(people, padded, strict=True):
            half_width, half_height = person["width"] / 2, person["height"] / 2
            left, right = max(0.0, person["x"] - half_width - 10), min(768.0, person["x"] + half_width + 10)
            top, bottom = max(0.0, person["y"] - half_height - 5), min(576.0, person["y"] + half_height + 5)
            assert box["width"] == pytest.approx(right - left, abs=0.2)
            assert box["height"] == pytest.approx(bottom - top, abs=0.2)
            assert box["class"] == person["class"] and box["detection_id"] != person["detection_id"]
        [group] = output["group"]["predictions"]  # detections_merge: one box around them, their lowest confidence
        assert group["class"] == "group" and group["confidence"] == min(p["confidence"] for p in people)
        left = min(p["x"] - p["width"] / 2 for p in people)
        right = max(p["x"] + p["width"] / 2 for p in people)
        assert group["width"] == pytest.approx(right - left, abs=0.2)


def test_a_heatmap_of_where_the_tracked_people_walked(tracked_three_ways: list[dict[str, Any]]) -> None:
    outputs = tracked_three_ways

    assert len(outputs) == 150 and not [o for o in outputs if "workflow_errors" in o]
    heat, frame = (cv2.imdecode(np.frombuffer(base64.b64decode(outputs[-1][name]["value"]), np.uint8),
                                cv2.IMREAD_COLOR).astype(int) for name in ("heat", "frame"))
    difference = np.abs(heat - frame).max(axis=2)  # the last frame: heat of the whole clip, else the frame as it came
    paths: dict[int, list[tuple[float, float]]] = {}
    for output in outputs:
        for person in output["tracked"]["predictions"]:  # bottom centres (the heat's default position)
            paths.setdefault(person["tracker_id"], []).append((person["x"], person["y"] + person["height"] / 2))
    walked = [path[-1] for path in paths.values() if np.hypot(*np.subtract(path[-1], path[0])) > 100]
    assert len(walked) >= 3, paths
    for x, y in walked:  # under 25 px (motion_threshold) from where the walker last added heat, 40 px around
        column, row = int(x), min(int(y), 572)
        assert difference[row - 3:row + 4, column - 3:column + 4].mean() > 15, (x, y)
    rows, columns = np.ogrid[:576, :768]
    far = np.ones((576, 768), dtype=bool)  # more than 60 px from every tracked person: no heat
    for x, y in (point for path in paths.values() for point in path):
        far &= (columns - x) ** 2 + (rows - y) ** 2 > 60**2
    assert far.mean() > 0.2 and difference[far].mean() < 0.5, (far.mean(), difference[far].mean())


class _Hooks(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def test_speed_estimation_in_metres_on_a_perspective_corrected_floor(stack: Stack, clip: str) -> None:
    # vtest's paved floor, seen at an angle (people ~80 px tall, ~1.75 m: ~46 px a metre across, fewer in depth),
    # onto a rectangle of 15 x 10 metres: its coordinates run 0..14 x 0..9, as the reference's (w - 1, h - 1)
    floor = [[100, 150], [700, 150], [768, 400], [0, 400]]
    _, outputs = run_to_end(stack, wf.init(clip, wf.speed_estimation(floor, width=15, length=10)))

    assert len(outputs) == 150 and not [o for o in outputs if "workflow_errors" in o]
    speeds: dict[int, list[float]] = {}  # tracker id -> smoothed speeds (m/s) while wholly on the floor
    for output in outputs:
        people, on_floor, moving = (output[key]["predictions"] for key in ("people", "on_road", "velocities"))
        for key in ("tracker_id", "detection_id", "parent_id"):  # the same people, in the floor's metres
            assert [p[key] for p in on_floor] == [p[key] for p in people] == [p[key] for p in moving]
        for person, placed, measured in zip(people, on_floor, moving, strict=True):
            corners = [(person["x"] + dx * person["width"] / 2, person["y"] + dy * person["height"] / 2)
                       for dx in (-1, 1) for dy in (-1, 1)]
            if all(cv2.pointPolygonTest(np.array(floor, np.float32), corner, False) > 0 for corner in corners):
                assert 0 < placed["x"] < 14 and 0 < placed["y"] < 9, (person, placed)
                speeds.setdefault(person["tracker_id"], []).append(measured["smoothed_speed"])
    walkers = {track: sorted(seen)[len(seen) // 2] for track, seen in speeds.items() if len(seen) >= 15}
    assert len(walkers) >= 3, speeds  # medians, m/s: people walk at 1 to 2, some stand, none run
    assert all(median < 3.0 for median in walkers.values()) and sum(m > 0.7 for m in walkers.values()) >= 3, walkers
    assert max(max(seen) for seen in speeds.values()) < 10.0, speeds  # in pixels a second, tens to hundreds


def test_a_webhook_sink_posts_counts_to_a_real_server(stack: Stack, clip: str) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        _, outputs = run_to_end(stack, wf.init(clip, wf.webhook(url), url=url))
        wait_until(lambda: bool(_Hooks.received), timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert all(hook["camera"] == "entrance" and hook["people"] >= 1 for hook in _Hooks.received)
    # fire and forget with a 1 s cooldown: the first frame sends, the next ones are throttled
    messages = [o["webhook"]["message"] for o in outputs]
    assert messages[0] == "Notification sent in the background task"
    assert "Sink cooldown applies" in messages[1]
    assert outputs[1]["webhook"]["throttling_status"] is True
    assert 1 <= len(_Hooks.received) <= len(outputs)


def test_a_slack_notification_posts_the_count_and_a_csv_file(stack: Stack, short_clip: str, slack: FakeSlack) -> None:
    token = "xoxb-e2e-secret"
    pipeline_id, outputs = run_to_end(stack, wf.init(short_clip, wf.slack(), slack_token=token))

    assert len(outputs) == 20
    sent = [o for o in outputs if o["slack"]["message"] == "Notification sent successfully"]
    assert sent and all(o["slack"]["error_status"] is False for o in outputs)
    assert len(sent) < 20 and {o["slack"]["message"] for o in outputs} - {sent[0]["slack"]["message"]} == {
        "Sink cooldown applies"}, "2 s of cooldown between posts"
    calls = slack.wait_for(3 * len(sent))  # per post: an upload URL, the upload, the share
    completes = [c for c in calls if c.path == "/api/files.completeUploadExternal"]
    assert len(completes) == len(sent)
    for output, complete in zip(sent, completes, strict=True):  # in frame order, one post per sent frame
        people = len(output["people"]["predictions"])
        assert complete.form()["initial_comment"] == [f"{people} people at the entrance"]
        assert complete.form()["channel_id"] == ["C0CAMERAS"]
    uploads = [c for c in calls if c.path == "/upload/people.csv"]
    assert [u.body.decode().splitlines()[0] for u in uploads] == ["people,timestamp"] * len(sent)
    assert all(c.headers.get("authorization") == f"Bearer {token}" for c in calls if c.path.startswith("/api/"))
    status = call(stack.port, {"type": "status", "pipeline_id": pipeline_id})
    assert token not in json.dumps(status) and token not in json.dumps(outputs)


def test_a_token_from_the_workers_environment_reaches_slack_beside_buffered_counts(
        stack: Stack, short_clip: str, slack: FakeSlack) -> None:
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {"type": "roboflow_core/environment_secrets_store@v1", "name": "vault",
             "variables_storing_secrets": ["E2E_SLACK_TOKEN"]},
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "model", "images": "$inputs.image",
             "model_id": "yolov3-tiny/coco-416", "confidence": 0.3, "class_filter": ["person"]},
            {"type": "roboflow_core/property_definition@v1", "name": "people", "data": "$steps.model.predictions",
             "operations": [{"type": "SequenceLength"}]},
            {"type": "roboflow_core/cache_get@v1", "name": "previous", "image": "$inputs.image", "key": "people"},
            {"type": "roboflow_core/cache_set@v1", "name": "remember", "image": "$inputs.image", "key": "people",
             "value": "$steps.people.output"},
            {"type": "roboflow_core/buffer@v1", "name": "last_counts", "data": "$steps.people.output", "length": 3},
            {"type": "roboflow_core/slack_notification@v1", "name": "notify",
             "slack_token": "$steps.vault.e2e_slack_token", "channel": "C0ENVSECRET",
             "message": "{{ $parameters.people }} people at the entrance",
             "message_parameters": {"people": "$steps.people.output"}, "fire_and_forget": False,
             "cooldown_seconds": 600, "cooldown_session_key": "entrance"},
        ],
        "outputs": [
            {"type": "JsonField", "name": "people", "selector": "$steps.people.output"},
            {"type": "JsonField", "name": "previous", "selector": "$steps.previous.output"},
            {"type": "JsonField", "name": "last_counts", "selector": "$steps.last_counts.output"},
            {"type": "JsonField", "name": "slack", "selector": "$steps.notify.message"},
            {"type": "JsonField", "name": "token", "selector": "$steps.vault.e2e_slack_token"},
        ],
    }
    pipeline_id, outputs = run_to_end(stack, wf.init(short_clip, workflow))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o], outputs[0]
    counts = [o["people"] for o in outputs]
    assert max(counts) >= 1
    assert [o["last_counts"] for o in outputs] == [counts[index::-1][:3] for index in range(20)]
    assert [o["previous"] for o in outputs] == [False, *counts[:-1]]  # read before this frame's count is stored
    assert [o["slack"] for o in outputs] == ["Notification sent successfully"] + ["Sink cooldown applies"] * 19
    assert {o["token"] for o in outputs} == {"***"}
    [post] = [r for r in slack.requests if r.path == "/api/chat.postMessage" and r.json()["channel"] == "C0ENVSECRET"]
    assert post.headers["authorization"] == f"Bearer {ENV_SLACK_TOKEN}"
    assert post.json()["text"] == f"{counts[0]} people at the entrance"
    status = call(stack.port, {"type": "status", "pipeline_id": pipeline_id})
    assert ENV_SLACK_TOKEN not in json.dumps(status) + json.dumps(outputs)


def test_hosted_llms_classify_a_rate_limited_frame_as_pasted(stack: Stack, short_clip: str,
                                                              llm_apis: FakeLlmApis) -> None:
    """open_ai@v2, anthropic_claude@v1 and google_gemini@v2, gated by a rate limiter, each get the frame's JPEG
    and their answer reaches the outputs (json_parser reads OpenAI's); the keys never do."""
    llm_apis.text["openai"] = '```json\n{"class_name": "people", "confidence": 0.9}\n```'
    keys = {"openai": "sk-e2e-openai-secret", "anthropic": "sk-ant-e2e-secret", "gemini": "AIza-e2e-secret"}
    common = {"images": "$inputs.image", "task_type": "classification", "classes": ["people", "empty"]}
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"},
                   *({"type": "WorkflowParameter", "name": f"{name}_key"} for name in keys)],
        "steps": [
            {"type": "roboflow_core/rate_limiter@v1", "name": "limit", "cooldown_seconds": 3600,
             "depends_on": "$inputs.image", "next_steps": ["$steps.gpt", "$steps.claude", "$steps.gemini"]},
            {"type": "roboflow_core/open_ai@v2", "name": "gpt", **common, "api_key": "$inputs.openai_key",
             "model_version": "gpt-4o-mini"},
            {"type": "roboflow_core/anthropic_claude@v1", "name": "claude", **common,
             "api_key": "$inputs.anthropic_key"},
            {"type": "roboflow_core/google_gemini@v2", "name": "gemini", **common, "api_key": "$inputs.gemini_key",
             "model_version": "gemini-2.5-flash"},
            {"type": "roboflow_core/json_parser@v1", "name": "parsed", "raw_json": "$steps.gpt.output",
             "expected_fields": ["class_name"]},
        ],
        "outputs": [{"type": "JsonField", "name": name, "selector": f"$steps.{name}.output"}
                    for name in ("gpt", "claude", "gemini")] + [
            {"type": "JsonField", "name": "classes", "selector": "$steps.gpt.classes"},
            {"type": "JsonField", "name": "class_name", "selector": "$steps.parsed.class_name"}],
    }
    before = len(llm_apis.requests)
    pipeline_id, outputs = run_to_end(stack, wf.init(short_clip, workflow,
                                                     **{f"{name}_key": key for name, key in keys.items()}))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o], outputs[0]
    first, *rest = outputs
    assert (first["gpt"], first["claude"], first["gemini"]) == (llm_apis.text["openai"], "claude says hi",
                                                                  "gemini hi")
    assert first["classes"] == ["people", "empty"] and first["class_name"] == "people"
    assert all(o["gpt"] is None and o["claude"] is None and o["gemini"] is None for o in rest), "rate limited"
    requests = llm_apis.requests[before:]
    assert sorted(r.provider for r in requests) == ["anthropic", "gemini", "openai"]
    by = {r.provider: r for r in requests}
    assert by["openai"].headers["authorization"] == f"Bearer {keys['openai']}"
    assert by["anthropic"].headers["x-api-key"] == keys["anthropic"]
    assert by["gemini"].headers["x-goog-api-key"] == keys["gemini"]
    frame = next(read_frames(Path(short_clip), 1))
    images = [by["openai"].json()["messages"][1]["content"][1]["image_url"]["url"].removeprefix(
                  "data:image/jpeg;base64,"),
              by["anthropic"].json()["messages"][0]["content"][0]["source"]["data"],
              by["gemini"].json()["contents"]["parts"][0]["inline_data"]["data"]]
    for data in images:  # the first frame, as a JPEG
        sent = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert sent.shape == frame.shape and float(np.abs(sent.astype(int) - frame.astype(int)).mean()) < 4
    status = json.dumps(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))
    assert not [key for key in keys.values() if key in status or key in json.dumps(outputs)]


def test_open_ai_v4_with_its_own_key_asks_the_responses_api_into_a_classifier(stack: Stack, short_clip: str,
                                                                              llm_apis: FakeLlmApis) -> None:
    """open_ai@v4 (OpenAI's Responses API), with the user's own key (its default, Roboflow's proxy, is refused) and a
    reasoning effort, gated by a rate limiter, gets the frame's JPEG; vlm_as_classifier@v2 reads its answer; the key
    reaches neither outputs nor status."""
    llm_apis.text["openai_responses"] = '```json\n{"class_name": "people", "confidence": 0.7}\n```'
    key = "sk-proj-e2e-responses-secret"
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}, {"type": "WorkflowParameter", "name": "openai_key"}],
        "steps": [
            {"type": "roboflow_core/rate_limiter@v1", "name": "limit", "cooldown_seconds": 3600,
             "depends_on": "$inputs.image", "next_steps": ["$steps.gpt"]},
            {"type": "roboflow_core/open_ai@v4", "name": "gpt", "images": "$inputs.image",
             "task_type": "classification", "classes": ["people", "empty"], "api_key": "$inputs.openai_key",
             "reasoning_effort": "low", "max_tokens": 300},
            {"type": "roboflow_core/vlm_as_classifier@v2", "name": "parser", "image": "$inputs.image",
             "vlm_output": "$steps.gpt.output", "classes": "$steps.gpt.classes"},
            {"type": "roboflow_core/property_definition@v1", "name": "top_class", "data": "$steps.parser.predictions",
             "operations": [{"type": "ClassificationPropertyExtract", "property_name": "top_class"}]},
        ],
        "outputs": [{"type": "JsonField", "name": "answer", "selector": "$steps.gpt.output"},
                    {"type": "JsonField", "name": "top_class", "selector": "$steps.top_class.output"},
                    {"type": "JsonField", "name": "parser_error", "selector": "$steps.parser.error_status"}],
    }
    refused = call(stack.port, wf.init(short_clip, {**workflow, "steps": [  # api_key left to its default
        {k: v for k, v in step.items() if k != "api_key"} for step in workflow["steps"]]}))["response"]
    assert (refused["status"], refused["error_type"]) == ("failure", "invalid_payload"), refused
    assert refused["error_message"].startswith("field 'processing_configuration.workflow_specification.steps[1]"
                                               ".api_key': an api_key of the form 'rf_key:...' asks for Roboflow's "
                                               "API proxy"), refused
    before = len(llm_apis.requests)
    pipeline_id, outputs = run_to_end(stack, wf.init(short_clip, workflow, openai_key=key))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o], outputs[0]
    first, *rest = outputs
    assert first == {"answer": llm_apis.text["openai_responses"], "top_class": "people", "parser_error": False}
    assert all(o["answer"] is None and o["top_class"] is None for o in rest), "rate limited"
    [request] = [r for r in llm_apis.requests[before:] if r.provider == "openai_responses"]
    assert request.path == "/v1/responses" and request.headers["authorization"] == f"Bearer {key}"
    body = request.json()
    assert (body["model"], body["reasoning"], body["max_output_tokens"]) == ("gpt-5.1", {"effort": "low"}, 300)
    assert body["instructions"].startswith("You act as single-class classification model.")
    text, picture = body["input"][0]["content"]
    assert text == {"type": "input_text", "text": "List of all classes to be recognised by model: people, empty"}
    data = picture["image_url"].removeprefix("data:image/jpeg;base64,")
    sent = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    frame = next(read_frames(Path(short_clip), 1))
    assert sent.shape == frame.shape and float(np.abs(sent.astype(int) - frame.astype(int)).mean()) < 4
    status = json.dumps(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))
    assert key not in status and key not in json.dumps(outputs)


def test_openrouter_vlms_classify_and_answer_a_rate_limited_frame_as_pasted(stack: Stack, short_clip: str,
                                                                            llm_apis: FakeLlmApis) -> None:
    """llama_3_2_vision@v1 (classification, into vlm_as_classifier@v2) and kimi_openrouter@v2 (structured answering,
    into json_parser), gated by a rate limiter, call the operator's OpenRouter with the frame and each model's slug;
    the key reaches neither outputs nor status."""
    llm_apis.text["openrouter"] = '```json\n{"class_name": "people", "confidence": 0.8}\n```'
    key = "sk-or-v1-e2e-secret"
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}, {"type": "WorkflowParameter", "name": "api_key"},
                   {"type": "WorkflowParameter", "name": "classes", "default_value": ["people", "empty"]}],
        "steps": [
            {"type": "roboflow_core/rate_limiter@v1", "name": "limit", "cooldown_seconds": 3600,
             "depends_on": "$inputs.image", "next_steps": ["$steps.llama", "$steps.kimi"]},
            {"type": "roboflow_core/llama_3_2_vision@v1", "name": "llama", "images": "$inputs.image",
             "task_type": "classification", "classes": "$inputs.classes", "api_key": "$inputs.api_key",
             "model_version": "11B (Regular) - OpenRouter"},
            {"type": "roboflow_core/vlm_as_classifier@v2", "name": "parser", "image": "$inputs.image",
             "vlm_output": "$steps.llama.output", "classes": "$steps.llama.classes"},
            {"type": "roboflow_core/property_definition@v1", "name": "top_class", "data": "$steps.parser.predictions",
             "operations": [{"type": "ClassificationPropertyExtract", "property_name": "top_class"}]},
            {"type": "roboflow_core/kimi_openrouter@v2", "name": "kimi", "images": "$inputs.image",
             "task_type": "structured-answering", "output_structure": {"class_name": "who is in the image"},
             "api_key": "$inputs.api_key", "privacy_level": "zdr"},
            {"type": "roboflow_core/json_parser@v1", "name": "parsed", "raw_json": "$steps.kimi.output",
             "expected_fields": ["class_name"]},
        ],
        "outputs": [
            {"type": "JsonField", "name": "llama", "selector": "$steps.llama.output"},
            {"type": "JsonField", "name": "top_class", "selector": "$steps.top_class.output"},
            {"type": "JsonField", "name": "parser_error", "selector": "$steps.parser.error_status"},
            {"type": "JsonField", "name": "class_name", "selector": "$steps.parsed.class_name"},
        ],
    }
    before = len(llm_apis.requests)
    pipeline_id, outputs = run_to_end(stack, wf.init(short_clip, workflow, api_key=key))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o], outputs[0]
    first, *rest = outputs
    assert first["llama"] == llm_apis.text["openrouter"]
    assert (first["top_class"], first["parser_error"], first["class_name"]) == ("people", False, "people")
    assert all(o["llama"] is None and o["class_name"] is None for o in rest), "rate limited"
    requests = [r for r in llm_apis.requests[before:] if r.provider == "openrouter"]
    assert len(requests) == 2 and {r.path for r in requests} == {"/api/v1/chat/completions"}
    by = {r.json()["model"]: r.json() for r in requests}
    assert set(by) == {"meta-llama/llama-3.2-11b-vision-instruct", "moonshotai/kimi-k2.6"}
    assert "provider" not in by["meta-llama/llama-3.2-11b-vision-instruct"]
    assert by["moonshotai/kimi-k2.6"]["provider"] == {"data_collection": "deny", "zdr": True}
    assert all(r.headers["authorization"] == f"Bearer {key}" for r in requests)
    frame = next(read_frames(Path(short_clip), 1))
    for body in by.values():  # the first frame, as a JPEG
        data = body["messages"][1]["content"][-1]["image_url"]["url"].removeprefix("data:image/jpeg;base64,")
        sent = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert sent.shape == frame.shape and float(np.abs(sent.astype(int) - frame.astype(int)).mean()) < 4
    status = json.dumps(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))
    assert key not in status and key not in json.dumps(outputs)


def test_an_openai_compatible_server_named_by_the_workflow_answers_into_a_parser(stack: Stack, short_clip: str,
                                                                                llm_apis: FakeLlmApis) -> None:
    """openai_compatible@v1, gated by a rate limiter, calls the base URL the workflow names (a loopback server: the
    worker's default WORKER_WORKFLOW_ALLOWED_NETWORKS) with the frame and its filled-in instruction; json_parser reads
    the answer; the key reaches neither outputs nor status."""
    llm_apis.text["openai_compatible"] = '```json\n{"count": 4}\n```'
    key = "sk-vllm-e2e-secret"
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}, {"type": "WorkflowParameter", "name": "server"},
                   {"type": "WorkflowParameter", "name": "api_key"}],
        "steps": [
            {"type": "roboflow_core/rate_limiter@v1", "name": "limit", "cooldown_seconds": 3600,
             "depends_on": "$inputs.image", "next_steps": ["$steps.vlm"]},
            {"type": "roboflow_core/openai_compatible@v1", "name": "vlm", "base_url": "$inputs.server",
             "model_name": "Qwen/Qwen2.5-VL-7B-Instruct", "api_key": "$inputs.api_key",
             "system_prompt": "Answer in JSON.",
             "prompt": "Count the {{ $parameters.subject }} in this frame. {{ $parameters.frame }}",
             "prompt_parameters": {"subject": "people", "frame": "$inputs.image"},
             "prompt_parameters_operations": {"subject": [{"type": "StringToUpperCase"}]},
             "extra_body": {"chat_template_kwargs": {"enable_thinking": False}}},
            {"type": "roboflow_core/json_parser@v1", "name": "parsed", "raw_json": "$steps.vlm.output",
             "expected_fields": ["count"]},
        ],
        "outputs": [{"type": "JsonField", "name": "answer", "selector": "$steps.vlm.output"},
                    {"type": "JsonField", "name": "error", "selector": "$steps.vlm.error_status"},
                    {"type": "JsonField", "name": "count", "selector": "$steps.parsed.count"}],
    }
    before = len(llm_apis.requests)
    pipeline_id, outputs = run_to_end(stack, wf.init(short_clip, workflow, server=llm_apis.compatible_url,
                                                     api_key=key))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o], outputs[0]
    first, *rest = outputs
    assert first == {"answer": llm_apis.text["openai_compatible"], "error": "", "count": 4}
    assert all(o["answer"] is None and o["count"] is None for o in rest), "rate limited"
    [request] = [r for r in llm_apis.requests[before:] if r.provider == "openai_compatible"]
    assert request.path == "/compatible/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {key}"
    body = request.json()
    assert (body["model"], body["max_tokens"], body["chat_template_kwargs"]) == (
        "Qwen/Qwen2.5-VL-7B-Instruct", 500, {"enable_thinking": False})
    system, user = body["messages"]
    assert system == {"role": "system", "content": "Answer in JSON."}
    text, picture = user["content"]
    assert text == {"type": "text", "text": "Count the PEOPLE in this frame."}
    data = picture["image_url"]["url"].removeprefix("data:image/jpeg;base64,")
    sent = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    frame = next(read_frames(Path(short_clip), 1))
    assert sent.shape == frame.shape and float(np.abs(sent.astype(int) - frame.astype(int)).mean()) < 4
    status = json.dumps(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))
    assert key not in status and key not in json.dumps(outputs)


def test_claude_v3_and_gemini_v4_with_own_keys_answer_into_a_classifier_and_a_detector(
        stack: Stack, short_clip: str, llm_apis: FakeLlmApis) -> None:
    """anthropic_claude@v3 (classification, thinking) into vlm_as_classifier@v2 and google_gemini@v4 (its own
    box_2d detection, code execution) into vlm_as_detector@v2, gated by a rate limiter: each is called with the
    user's own key (their default, Roboflow's proxy, is refused), and neither key reaches outputs or status."""
    keys = {"claude_key": "sk-ant-e2e-v3-secret", "gemini_key": "AIza-e2e-v4-secret"}
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"},
                   *({"type": "WorkflowParameter", "name": name} for name in keys)],
        "steps": [
            {"type": "roboflow_core/rate_limiter@v1", "name": "limit", "cooldown_seconds": 3600,
             "depends_on": "$inputs.image", "next_steps": ["$steps.claude", "$steps.gemini"]},
            {"type": "roboflow_core/anthropic_claude@v3", "name": "claude", "images": "$inputs.image",
             "task_type": "classification", "classes": ["people", "empty"], "api_key": "$inputs.claude_key",
             "model_version": "claude-opus-4-1", "extended_thinking": True},
            {"type": "roboflow_core/vlm_as_classifier@v2", "name": "scene", "image": "$inputs.image",
             "vlm_output": "$steps.claude.output", "classes": "$steps.claude.classes"},
            {"type": "roboflow_core/property_definition@v1", "name": "top_class", "data": "$steps.scene.predictions",
             "operations": [{"type": "ClassificationPropertyExtract", "property_name": "top_class"}]},
            {"type": "roboflow_core/google_gemini@v4", "name": "gemini", "images": "$inputs.image",
             "task_type": "object-detection", "classes": ["person", "bag"], "api_key": "$inputs.gemini_key",
             "model_version": "gemini-3-flash-preview", "thinking_level": "low", "google_code_execution": True},
            {"type": "roboflow_core/vlm_as_detector@v2", "name": "boxes", "image": "$inputs.image",
             "vlm_output": "$steps.gemini.output", "classes": "$steps.gemini.classes",
             "model_type": "google-gemini", "task_type": "object-detection"},
        ],
        "outputs": [{"type": "JsonField", "name": "claude", "selector": "$steps.claude.output"},
                    {"type": "JsonField", "name": "top_class", "selector": "$steps.top_class.output"},
                    {"type": "JsonField", "name": "boxes", "selector": "$steps.boxes.predictions"},
                    {"type": "JsonField", "name": "boxes_error", "selector": "$steps.boxes.error_status"}],
    }
    refused = call(stack.port, wf.init(short_clip, workflow, claude_key="rf_key:account",
                                       gemini_key=keys["gemini_key"]))["response"]
    assert (refused["status"], refused["error_type"]) == ("failure", "invalid_payload"), refused
    assert refused["error_message"].startswith("field 'processing_configuration.workflow_specification.steps[1]"
                                               ".api_key': an api_key of the form 'rf_key:...' asks for Roboflow's "
                                               "API proxy"), refused
    texts = dict(llm_apis.text)
    llm_apis.text["anthropic"] = '{"class_name": "people", "confidence": 0.9}'
    llm_apis.text["gemini"] = '[{"box_2d": [125, 250, 625, 500], "label": "person"}]'
    before = len(llm_apis.requests)
    try:
        pipeline_id, outputs = run_to_end(stack, wf.init(short_clip, workflow, **keys))
    finally:
        llm_apis.text.update(texts)

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o], outputs[0]
    first, *rest = outputs
    assert (first["claude"], first["top_class"], first["boxes_error"]) == (
        '{"class_name": "people", "confidence": 0.9}', "people", False)
    width, height = first["boxes"]["image"]["width"], first["boxes"]["image"]["height"]
    [person] = first["boxes"]["predictions"]
    assert (person["class"], person["class_id"], person["x"], person["y"], person["width"], person["height"]) == (
        "person", 0, 0.375 * width, 0.375 * height, 0.25 * width, 0.5 * height)
    assert all(o["claude"] is None and o["boxes"] is None for o in rest), "rate limited"
    by = {r.provider: r for r in llm_apis.requests[before:]}
    assert len(llm_apis.requests) - before == 2 and set(by) == {"anthropic", "gemini"}
    assert by["anthropic"].headers["x-api-key"] == keys["claude_key"]
    claude = by["anthropic"].json()
    assert (claude["model"], claude["max_tokens"], claude["thinking"]) == (
        "claude-opus-4-1-20250805", 32000, {"type": "enabled", "budget_tokens": 16000})
    assert by["gemini"].path == "/v1beta/models/gemini-3-flash-preview:generateContent"
    assert by["gemini"].headers["x-goog-api-key"] == keys["gemini_key"]
    gemini = by["gemini"].json()
    assert gemini["tools"] == [{"code_execution": {}}] and "systemInstruction" not in gemini
    assert gemini["generationConfig"]["thinking_config"] == {"thinking_level": "low"}
    assert gemini["generationConfig"]["response_schema"]["items"]["properties"]["label"]["enum"] == ["person", "bag"]
    frame = next(read_frames(Path(short_clip), 1))
    for data in (claude["messages"][0]["content"][0]["source"]["data"],
                 gemini["contents"]["parts"][0]["inline_data"]["data"]):  # the first frame (Claude's: at most 1024)
        sent = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert sent.shape == frame.shape and float(np.abs(sent.astype(int) - frame.astype(int)).mean()) < 4
    status = json.dumps(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))
    assert not [key for key in keys.values() if key in status or key in json.dumps(outputs)]


def test_meta_vlm_detects_and_spacexai_classifies_a_rate_limited_frame_into_parsers(
        stack: Stack, short_clip: str, llm_apis: FakeLlmApis) -> None:
    """meta_vlm@v1 (Muse object detection through the operator's OpenRouter, into vlm_as_detector@v2's muse parser)
    and spacexai@v1 (classification through the operator's xAI, WORKER_WORKFLOW_XAI_API_URL, into
    vlm_as_classifier@v2), gated by a rate limiter, each with the user's own key: Roboflow's proxy key is refused at
    INIT naming the field, and neither key reaches outputs or status."""
    keys = {"muse_key": "sk-or-v1-e2e-muse-secret", "grok_key": "xai-e2e-grok-secret"}
    workflow = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"},
                   *({"type": "WorkflowParameter", "name": name} for name in keys)],
        "steps": [
            {"type": "roboflow_core/rate_limiter@v1", "name": "limit", "cooldown_seconds": 3600,
             "depends_on": "$inputs.image", "next_steps": ["$steps.muse", "$steps.grok"]},
            {"type": "roboflow_core/meta_vlm@v1", "name": "muse", "images": "$inputs.image",
             "task_type": "object-detection", "classes": ["person", "bag"], "api_key": "$inputs.muse_key"},
            {"type": "roboflow_core/vlm_as_detector@v2", "name": "boxes", "image": "$inputs.image",
             "vlm_output": "$steps.muse.output", "classes": "$steps.muse.classes", "model_type": "muse",
             "task_type": "object-detection"},
            {"type": "roboflow_core/spacexai@v1", "name": "grok", "images": "$inputs.image",
             "task_type": "classification", "classes": ["people", "empty"], "api_key": "$inputs.grok_key",
             "reasoning_effort": "low"},
            {"type": "roboflow_core/vlm_as_classifier@v2", "name": "scene", "image": "$inputs.image",
             "vlm_output": "$steps.grok.output", "classes": "$steps.grok.classes"},
            {"type": "roboflow_core/property_definition@v1", "name": "top_class", "data": "$steps.scene.predictions",
             "operations": [{"type": "ClassificationPropertyExtract", "property_name": "top_class"}]},
        ],
        "outputs": [{"type": "JsonField", "name": "boxes", "selector": "$steps.boxes.predictions"},
                    {"type": "JsonField", "name": "thinking", "selector": "$steps.muse.thinking"},
                    {"type": "JsonField", "name": "grok", "selector": "$steps.grok.output"},
                    {"type": "JsonField", "name": "top_class", "selector": "$steps.top_class.output"}],
    }
    refused = call(stack.port, wf.init(short_clip, workflow, muse_key=keys["muse_key"],
                                       grok_key="rf_key:account"))["response"]
    assert (refused["status"], refused["error_type"]) == ("failure", "invalid_payload"), refused
    assert refused["error_message"].startswith("field 'processing_configuration.workflow_specification.steps[3]"
                                               ".api_key': an api_key of the form 'rf_key:...' asks for Roboflow's "
                                               "API proxy"), refused
    assert "give your own xAI API key" in refused["error_message"]
    texts = dict(llm_apis.text)
    llm_apis.text["openrouter"] = '[{"label": "person", "x_min": 100, "y_min": 200, "x_max": 400, "y_max": 900}]'
    llm_apis.text["xai"] = '```json\n{"class_name": "people", "confidence": 0.9}\n```'
    before = len(llm_apis.requests)
    try:
        pipeline_id, outputs = run_to_end(stack, wf.init(short_clip, workflow, **keys))
    finally:
        llm_apis.text.update(texts)

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o], outputs[0]
    first, *rest = outputs
    assert (first["grok"], first["top_class"], first["thinking"]) == (
        '```json\n{"class_name": "people", "confidence": 0.9}\n```', "people", "")
    width, height = first["boxes"]["image"]["width"], first["boxes"]["image"]["height"]
    [person] = first["boxes"]["predictions"]  # 0-1000 of the frame
    assert (person["class"], person["class_id"]) == ("person", 0)
    assert (person["x"], person["y"], person["width"], person["height"]) == pytest.approx(
        (0.25 * width, 0.55 * height, 0.3 * width, 0.7 * height), abs=1)
    assert all(o["boxes"] is None and o["grok"] is None for o in rest), "rate limited"
    by = {r.provider: r for r in llm_apis.requests[before:]}
    assert len(llm_apis.requests) - before == 2 and set(by) == {"openrouter", "xai"}
    assert by["openrouter"].headers["authorization"] == f"Bearer {keys['muse_key']}"
    muse = by["openrouter"].json()
    assert (muse["model"], muse["reasoning"], muse["max_tokens"], muse["provider"]) == (
        "meta/muse-spark-1.2", {"effort": "low"}, 2048, {"data_collection": "deny"})
    picture, asked = muse["messages"][0]["content"]
    assert asked["text"].startswith("You are an object grounding expert. Detect all objects in this image matching "
                                    "these labels: person, bag.")
    assert (by["xai"].path, by["xai"].headers["authorization"]) == ("/xai/v1/responses", f"Bearer {keys['grok_key']}")
    grok = by["xai"].json()
    assert (grok["model"], grok["store"], grok["reasoning"]) == ("grok-4.6", False, {"effort": "low"})
    assert grok["instructions"].startswith("You act as single-class classification model.")
    frame = next(read_frames(Path(short_clip), 1))
    for url in (picture["image_url"]["url"], grok["input"][0]["content"][1]["image_url"]):  # the first frame
        data = url.removeprefix("data:image/jpeg;base64,")
        sent = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert sent.shape == frame.shape and float(np.abs(sent.astype(int) - frame.astype(int)).mean()) < 4
    status = json.dumps(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))
    assert not [key for key in keys.values() if key in status or key in json.dumps(outputs)]


def test_a_twilio_sms_carries_the_count_once(stack: Stack, short_clip: str, twilio: HttpRecorder) -> None:
    pipeline_id, outputs = run_to_end(stack, wf.init(short_clip, wf.sms(), sid="AC-e2e", token="twilio-e2e-secret"))

    assert len(outputs) == 20
    assert [o["sms"] for o in outputs] == ["Notification sent successfully"] + ["Sink cooldown applies"] * 19
    [request] = twilio.wait_for(1)
    assert request.path == "/2010-04-01/Accounts/AC-e2e/Messages.json"
    assert request.form()["Body"] == [f"{len(outputs[0]['people']['predictions'])} people at the entrance"]
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"AC-e2e:twilio-e2e-secret").decode()
    status = json.dumps(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))
    assert "AC-e2e" not in status and "twilio-e2e-secret" not in status


def test_an_email_notification_reaches_a_real_smtp_server(stack: Stack, short_clip: str,
                                                         certificate: Certificate) -> None:
    server = SmtpRecorder(certificate, "tls", "alerts@example.com", "smtp-Pa55word")
    try:
        workflow = wf.email(server.port)
        pipeline_id, outputs = run_to_end(stack, wf.init(short_clip, workflow, password="smtp-Pa55word"))
        [mail] = server.wait_for(1)
    finally:
        server.close()
    message = mail.message()
    assert (mail.sender, mail.receivers, mail.tls) == ("alerts@example.com", ["ops@example.com"], True)
    assert message["Subject"] == "People at the gate"
    body = message.get_body(("plain", "html"))
    assert body is not None and "people in view:" in body.get_content()
    assert outputs[0]["email"]["message"] == "Notification sent in the background task"
    assert all(o["email"]["throttling_status"] for o in outputs[1:]), "a 60 s cooldown: one mail"
    report = _ok(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))["report"]
    assert "smtp-Pa55word" not in json.dumps(report) and "smtp-Pa55word" not in json.dumps(outputs)


def test_an_html_email_v2_carries_the_annotated_frame_inline_and_attached(stack: Stack, short_clip: str,
                                                                          certificate: Certificate) -> None:
    server = SmtpRecorder(certificate, "tls", "alerts@example.com", "smtp-v2-Pa55word")
    try:
        pipeline_id, outputs = run_to_end(stack, wf.init(short_clip, wf.email_v2(server.port),
                                                         password="smtp-v2-Pa55word"))
        [mail] = server.wait_for(1)
    finally:
        server.close()
    assert outputs[0]["email"] == {"error_status": False, "throttling_status": False,
                                   "message": "Notification sent successfully"}
    assert all(o["email"]["throttling_status"] for o in outputs[1:]), "a 60 s cooldown: one mail"
    message = mail.message()
    assert (mail.sender, mail.receivers, mail.tls) == ("alerts@example.com", ["ops@example.com"], True)
    body = message.get_body(("html",))
    assert body is not None and message["Subject"] == "People at the gate"
    people = len(outputs[0]["people"]["predictions"])
    assert f"<b>{people}</b> in view<br>" in body.get_content() and 'src="cid:image_view"' in body.get_content()
    frame = next(read_frames(Path(short_clip), 1))
    [inline] = [part for part in message.walk() if part["Content-ID"] == "<image_view>"]
    [attached] = [part for part in message.iter_attachments() if part.get_filename() == "frame.jpg"]
    for part in (inline, attached):
        assert part.get_content_type() == "image/jpeg"
        sent = cv2.imdecode(np.frombuffer(part.get_content(), np.uint8), cv2.IMREAD_COLOR)
        assert sent.shape == frame.shape
    report = _ok(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))["report"]
    assert "smtp-v2-Pa55word" not in json.dumps(report) and "smtp-v2-Pa55word" not in json.dumps(outputs)
    reply = call(stack.port, wf.init(short_clip, wf.email_v2(465, provider=None), password="x"))
    assert reply["response"]["error_type"] == "invalid_payload" and (
        "steps[2].email_provider': 'Roboflow Managed API Key' (the default) sends through Roboflow's hosted e-mail "
        "proxy, which this manager does not have; set email_provider to 'Custom SMTP'") in reply["response"][
        "error_message"], reply


def test_csv_rows_are_written_by_a_local_file_sink_under_its_root(stack: Stack, short_clip: str,
                                                                  file_root: Path) -> None:
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.csv_log("counts")))

    assert all(o["sink"]["error_status"] is False for o in outputs), outputs[0]
    [written] = list((file_root / "counts").iterdir())
    rows = written.read_text().splitlines()
    assert rows[0].split(",") == ["people", "timestamp"] and len(rows) == 1 + len(outputs)
    assert all(int(row.split(",")[0]) >= 1 for row in rows[1:])


def test_annotated_frames_and_detections_are_uploaded_to_an_s3_bucket(stack: Stack, short_clip: str,
                                                                      s3: FakeS3) -> None:
    pipeline_id, outputs = run_to_end(stack, wf.init(short_clip, wf.s3_upload(), bucket="camera-results",
                                                     key_id=S3_KEY_ID, secret=S3_SECRET))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o], outputs[0]
    assert s3.refusals == [], s3.refusals[:1]
    frames = s3.objects("camera-results", "gate/frames/")
    assert [o["frames"] for o in outputs] == [
        {"error_status": False, "message": f"Data saved successfully to s3://camera-results/{key}"}
        for key in sorted(frames)], "one JPEG object per frame, in frame order"
    shape = next(read_frames(Path(short_clip), 1)).shape
    for stored in frames.values():
        assert stored.key.startswith("gate/frames/frame_") and stored.headers["content-type"] == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(stored.body, np.uint8), cv2.IMREAD_COLOR).shape == shape
    logs = s3.objects("camera-results", "gate/results/")
    assert len(logs) == 2 and all(key.endswith(".jsonl") for key in logs), "a new log object every 10 frames"
    lines = [json.loads(line) for key in sorted(logs) for line in logs[key].body.decode().splitlines()]
    assert [len(line["predictions"]) for line in lines] == [len(o["people"]["predictions"]) for o in outputs]
    assert sum(len(line["predictions"]) for line in lines) > 0
    assert all(o["log"]["error_status"] is False for o in outputs)
    for put in s3.puts:  # every request signed for the step's region with the parameters' key
        assert (put.authorization["key_id"], put.authorization["region"]) == (S3_KEY_ID, "eu-west-1")
    report = json.dumps(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))
    assert not any(secret in report + json.dumps(outputs) for secret in (S3_KEY_ID, S3_SECRET))


def test_slicer_and_stitch(stack: Stack, short_clip: str) -> None:
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.sahi()))

    assert len(outputs) == 20
    people = [p for o in outputs for p in o["predictions"]["predictions"] if p["class"] == "person"]
    assert len(people) > 20
    # stitched back into the frame's coordinates, whichever slice found them
    assert all(0 <= p["x"] <= 768 and 0 <= p["y"] <= 576 for p in people)
    assert max(p["x"] for p in people) > 512, "the right-hand slices contribute"
    assert outputs[0]["predictions"]["image"] == {"width": 768, "height": 576}


def test_two_models_and_consensus(stack: Stack, short_clip: str) -> None:
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.consensus()))

    agreed = [o["agreed"]["predictions"] for o in outputs]
    assert sum(map(len, agreed)) > 0
    assert all(o["present"] in (True, False) for o in outputs)
    assert any(o["present"] for o in outputs)


@pytest.mark.parametrize("version", [2, 3])
def test_a_classification_model_runs_on_every_crop_and_its_class_replaces_the_detection_s(
        stack: Stack, short_clip: str, version: int) -> None:
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.classify_crops(version)))

    assert len(outputs) == 20
    for output in outputs:
        people, colours = output["people"]["predictions"], output["colours"]
        coloured = output["coloured"]["predictions"]
        assert len(colours) == len(people) == len(coloured) > 0, "one classification per detected person"
        assert output["classified"] == len(colours)  # dimension_collapse: the crops' results as one list
        for person, colour, recoloured in zip(people, colours, coloured, strict=True):
            # detections_classes_replacement: the person's box, its crop's top class, id and confidence, a new id
            assert [recoloured[key] for key in ("x", "y", "width", "height")] == [
                person[key] for key in ("x", "y", "width", "height")]
            top = next(p for p in colour["predictions"] if p["class"] == colour["top"])
            assert (recoloured["class"], recoloured["class_id"]) == (colour["top"], top["class_id"])
            assert recoloured["confidence"] == pytest.approx(colour["confidence"], abs=1e-4)
            assert recoloured["detection_id"] != person["detection_id"]
            assert colour["top"] in ("red", "green", "blue") and 0 < colour["confidence"] <= 1
            assert colour["prediction_type"] == "classification"
            # each crop is the person's box: its size, and the crop named after the detection
            assert (colour["image"]["width"], colour["image"]["height"]) == (
                pytest.approx(person["width"], abs=2), pytest.approx(person["height"], abs=2))
            assert colour["parent_id"] == person["detection_id"]


def _presence(bgr: np.ndarray) -> dict[str, float]:
    """The multi-label demo model's scores, computed here: sigmoid(10 x (mean - 0.5)) of each RGB channel of the
    image stretched to 64 x 64 (as the classifier's input)."""
    means = cv2.resize(bgr, (64, 64), interpolation=cv2.INTER_LINEAR).reshape(-1, 3).mean(axis=0)[::-1] / 255
    colours = ("red", "green", "blue")
    return {name: float(1 / (1 + np.exp(-10 * (mean - 0.5)))) for name, mean in zip(colours, means, strict=True)}


def _check_tags(tags: dict[str, Any], expected: dict[str, float], threshold: float) -> None:
    for name, score in expected.items():
        assert tags["predictions"][name]["confidence"] == pytest.approx(score, abs=0.02)
        if abs(score - threshold) > 0.05:  # a crop a pixel off does not move it across the threshold
            assert (name in tags["predicted_classes"]) == (score > threshold), (name, score, tags)


def test_a_multi_label_model_tags_the_frame_and_every_person_s_crop(stack: Stack, short_clip: str) -> None:
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.colour_tags(0.5)))

    assert len(outputs) == 20
    predicted: set[str] = set()
    for output, frame in zip(outputs, read_frames(Path(short_clip), 20), strict=True):
        _check_tags(output["frame_tags"], _presence(frame), 0.5)
        assert output["frame_tags"]["prediction_type"] == "classification"
        people, tags = output["people"]["predictions"], output["tags"]
        tagged = {p["detection_id"]: p for p in output["tagged"]["predictions"]}
        assert len(tags) == len(people) > 0
        for person, crop_tags in zip(people, tags, strict=True):
            x1, y1, x2, y2 = (round(v) for v in _corners(person))
            _check_tags(crop_tags, _presence(frame[max(y1, 0):y2, max(x1, 0):x2]), 0.5)
            assert crop_tags["parent_id"] == person["detection_id"]  # the crop of this person
            assert set(crop_tags["predictions"]) == {"red", "green", "blue"}
            predicted |= set(crop_tags["predicted_classes"])
            if crop_tags["predicted_classes"]:  # detections_classes_replacement: the crop's most confident class
                best = max(crop_tags["predictions"], key=lambda name: crop_tags["predictions"][name]["confidence"])
                [relabelled] = [p for p in tagged.values() if (p["x"], p["y"]) == (person["x"], person["y"])]
                assert (relabelled["class"], relabelled["class_id"]) == (
                    best, crop_tags["predictions"][best]["class_id"])
                assert relabelled["confidence"] == pytest.approx(crop_tags["predictions"][best]["confidence"],
                                                                 abs=1e-4)
        assert len(tagged) == sum(1 for crop_tags in tags if crop_tags["predicted_classes"])
    assert predicted, "some crop has a colour above half its range"


# Gemini's answer: fractions of the image in a Markdown block; the bag is unsure and filtered out.
VLM_ANSWER = ('Here are the objects:\n```json\n{"detections": [{"x_min": 0.25, "y_min": 0.5, "x_max": 0.5, '
              '"y_max": 0.75, "class_name": "person", "confidence": 0.875}, {"x_min": 0.125, "y_min": 0.125, '
              '"x_max": 0.25, "y_max": 0.25, "class_name": "bag", "confidence": 0.25}]}\n```')


def test_a_vlm_s_answers_are_parsed_into_detections_drawn_and_filtered_and_into_tags(
        stack: Stack, short_clip: str) -> None:
    tags = '{"predicted_classes": [{"class": "crowded", "confidence": 0.75}, {"class": "rainy", "confidence": 0.5}]}'
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.vlm_answers_parsed(), answer=VLM_ANSWER, tags=tags))

    assert len(outputs) == 20
    frames = read_frames(Path(short_clip), 20)
    for output, frame in zip(outputs, frames, strict=True):
        height, width = frame.shape[:2]
        assert output["error_status"] is False
        parsed = output["parsed"]
        assert parsed["image"] == {"width": width, "height": height}
        assert [(p["class"], p["class_id"], p["confidence"], p["x"], p["y"], p["width"], p["height"])
                for p in parsed["predictions"]] == [
            ("person", 0, 0.875, 0.375 * width, 0.625 * height, 0.25 * width, 0.25 * height),
            ("bag", 1, 0.25, 0.1875 * width, 0.1875 * height, 0.125 * width, 0.125 * height)]
        [person] = output["confident"]["predictions"]
        assert person["detection_id"] == parsed["predictions"][0]["detection_id"]
        drawn = cv2.imdecode(np.frombuffer(base64.b64decode(output["annotated"]["value"]), np.uint8),
                             cv2.IMREAD_COLOR).astype(int)
        top, left, right = int(0.5 * height), int(0.25 * width), int(0.5 * width)
        edge = drawn[top:top + 3, left + 5:right - 5]  # the person's box: green (BGR 0, 255, 0), 4 px thick
        assert edge[..., 1].mean() > 200 and edge[..., [0, 2]].mean() < 80
        bag = drawn[int(0.125 * height):int(0.125 * height) + 3, int(0.125 * width) + 5:int(0.25 * width) - 5]
        original = frame[int(0.125 * height):int(0.125 * height) + 3, int(0.125 * width) + 5:int(0.25 * width) - 5]
        assert np.abs(bag - original.astype(int)).mean() < 10  # not drawn: filtered out
        scene = output["scene"]
        assert scene["predicted_classes"] == ["crowded", "rainy"] == output["scene_tags"]
        assert scene["predictions"] == {"crowded": {"confidence": 0.75, "class_id": 0},
                                        "empty": {"confidence": 0.0, "class_id": 1},
                                        "night": {"confidence": 0.0, "class_id": 2},
                                        "rainy": {"confidence": 0.5, "class_id": -1}}


def _corners(prediction: dict[str, Any]) -> tuple[float, float, float, float]:
    half_width, half_height = prediction["width"] / 2, prediction["height"] / 2
    return (prediction["x"] - half_width, prediction["y"] - half_height, prediction["x"] + half_width,
            prediction["y"] + half_height)


def _inside(inner: tuple[float, ...], outer: tuple[float, ...]) -> bool:
    return outer[0] - 0.01 <= inner[0] and outer[1] - 0.01 <= inner[1] and inner[2] <= outer[2] + 0.01 and \
        inner[3] <= outer[3] + 0.01


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    shared = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return shared / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - shared)


def test_people_s_colours_read_as_text_and_the_people_found_on_their_crops_rolled_up_onto_the_frame(
        stack: Stack, short_clip: str) -> None:
    """stitch_ocr_detections reads the classifier's colour of each person (detections_classes_replacement) as text:
    v1 left to right by each box's left edge in whole pixels, v2 (collimate) right to left by box centre.
    detections_list_rollup puts the people the second model found on each person's crop back onto the frame: each
    rolled-up box is the box around the crop detections it merged (as the engine itself places them on the frame),
    and lands on a person the full-frame model found; its crop zones are the people's boxes."""
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.colours_read_and_people_rolled_up()))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o]
    texts, landed, rolled_up = set(), 0, 0
    for output in outputs:
        coloured = output["coloured"]["predictions"]
        by_left_edge = sorted(range(len(coloured)), key=lambda i: (round(_corners(coloured[i])[0]), i))
        assert output["left_to_right"] == " ".join(coloured[i]["class"] for i in by_left_edge)
        by_centre = sorted(coloured, key=lambda p: p["x"], reverse=True)
        assert output["right_to_left"] == " ".join(p["class"] for p in by_centre)
        texts.add(output["left_to_right"])

        people = [_corners(p) for p in output["people"]["predictions"]]
        assert [[tuple(corner) for corner in zone] for zone in output["zones"]] == [
            [(x1, y1), (x2, y1), (x2, y2), (x1, y2)] for x1, y1, x2, y2 in people]
        found = [_corners(p) for crop in output["on_crops"] if crop for p in crop["predictions"]]  # on the frame
        rolled = output["rolled_up"]
        boxes = [_corners(p) for p in rolled["predictions"]]
        assert rolled["image"] == {"width": 768, "height": 576}
        assert all(any(_inside(f, box) for box in boxes) for f in found)  # none lost
        for box in boxes:
            merged = [f for f in found if _inside(f, box)]
            assert merged and np.allclose([min(f[0] for f in merged), min(f[1] for f in merged),
                                           max(f[2] for f in merged), max(f[3] for f in merged)], box, atol=0.01)
            landed += max((_iou(box, person) for person in people), default=0.0) >= 0.5
        rolled_up += len(boxes)
    assert len(texts) >= 3 and any(len(set(text.split())) >= 2 for text in texts)  # colours change, and differ
    assert rolled_up >= 40 and landed >= 0.9 * rolled_up, (landed, rolled_up)


def test_a_frame_turned_10_degrees_comes_back_upright(stack: Stack, short_clip: str) -> None:
    """image_preprocessing turns each frame 10° counter-clockwise onto a larger canvas; auto_rotate_on_edges finds
    the turn back. vtest's own lines lie 0.5° to 2.5° off the horizontal (the frame's own angle): the turned frame's
    straight edges (its content's border, its floor) give back -10° within that. The image it returns is the frame
    turned by the rest, 10° + angle (computed here with OpenCV), on a canvas grown twice."""
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.deskewed(10)))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o]
    capture = cv2.VideoCapture(short_clip)

    def middle(pixels: np.ndarray) -> np.ndarray:
        y, x = pixels.shape[0] // 2, pixels.shape[1] // 2
        return pixels[y - 150:y + 150, x - 200:x + 200].astype(int)

    def turned(pixels: np.ndarray, degrees: float) -> np.ndarray:
        return cv2.warpAffine(pixels, cv2.getRotationMatrix2D((384, 288), degrees, 1.0), (768, 576))

    try:
        for index, output in enumerate(outputs):
            ok, frame = capture.read()
            assert ok
            angle = output["angle"]
            assert abs(angle + 10) < 1.6 and 0 <= output["frame_angle"] < 2.5, (index, angle, output["frame_angle"])
            image = cv2.imdecode(np.frombuffer(base64.b64decode(output["image"]["value"]), np.uint8),
                                 cv2.IMREAD_COLOR)
            sin, cos = abs(np.sin(np.radians(angle))), abs(np.cos(np.radians(angle)))
            assert image.shape == (int(700 * cos + 856 * sin), int(700 * sin + 856 * cos), 3)  # 768 x 576 turned 10°
            assert np.abs(middle(image) - middle(turned(frame, 10 + angle))).mean() < 6, index
            assert np.abs(middle(turned(frame, 10)) - middle(frame)).mean() > 20
    finally:
        capture.release()
    assert sum(abs(o["angle"] + 10) < 0.6 for o in outputs) >= 15


def test_the_background_painted_around_people_with_the_frame_s_class_and_their_count(
        stack: Stack, short_clip: str) -> None:
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.painted_background_and_labels()))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o]
    magenta = np.array([255, 0, 255])
    for output in outputs[::4]:
        drawn, frame = (cv2.imdecode(np.frombuffer(base64.b64decode(output[name]["value"]), np.uint8),
                                     cv2.IMREAD_COLOR).astype(int) for name in ("drawn", "frame"))
        assert output["colour"]["top"] in ("red", "green", "blue")
        label, count = (slice(0, 50), slice(0, 260)), (slice(576 - 80, 576), slice(768 - 260, 768))
        elsewhere = np.ones((576, 768), dtype=bool)
        elsewhere[label] = elsewhere[count] = False
        near, people = np.zeros((576, 768), dtype=bool), np.zeros((576, 768), dtype=bool)
        for person in output["people"]["predictions"]:
            x1, y1 = int(person["x"] - person["width"] / 2), int(person["y"] - person["height"] / 2)
            x2, y2 = int(person["x"] + person["width"] / 2), int(person["y"] + person["height"] / 2)
            near[max(0, y1 - 16):y2 + 16, max(0, x1 - 16):x2 + 16] = True
            people[y1 + 10:y2 - 10, x1 + 10:x2 - 10] = True  # well inside the box (JPEG blurs its edges)
        assert people.any()
        far = elsewhere & ~near
        painted = np.abs(drawn[far] - magenta).max(axis=1)
        assert far.mean() > 0.5 and (painted < 40).mean() > 0.99, (far.mean(), (painted < 40).mean())
        kept = people & elsewhere
        assert np.abs(drawn[kept] - frame[kept]).mean() < 6, np.abs(drawn[kept] - frame[kept]).mean()
        # the label: white text on its class's colour band, not magenta; the count: black text on white
        band = drawn[label]
        assert (band > 200).all(axis=2).sum() > 30 and (np.abs(band - magenta).max(axis=2) < 40).mean() < 0.5
        box = drawn[576 - 75:576 - 10, 768 - 150:768 - 10]
        assert (box > 200).all(axis=2).mean() > 0.6 and (box < 60).all(axis=2).sum() > 30


def test_a_gated_branch_merged_by_first_non_empty_or_default(stack: Stack, short_clip: str) -> None:
    crowd = 4  # the first 20 frames of vtest.avi show 1 to 4 people at confidence 0.3
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.crowd_or_zero(), crowd=crowd))

    assert len(outputs) == 20
    sizes = [len(output["people"]["predictions"]) for output in outputs]
    assert min(sizes) < crowd <= max(sizes), f"the clip should have frames on both sides of the gate: {sizes}"
    for size, output in zip(sizes, outputs, strict=True):
        assert output["counted"] == (size if size >= crowd else None)  # the gated step ran on crowded frames only
        assert output["crowd_size"] == (size if size >= crowd else 0)  # merged: the count, else the default


def test_switch_case_picks_the_message_template_by_crowd_level(stack: Stack, short_clip: str) -> None:
    crowd = 4  # the first 20 frames of vtest.avi show 1 to 4 people at confidence 0.3
    started = datetime.now(UTC)
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.crowd_message(), crowd=crowd, timezone="Asia/Kolkata"))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o]
    sizes = [len(output["people"]["predictions"]) for output in outputs]
    assert min(sizes) < crowd <= max(sizes), f"the clip should have frames on both branches: {sizes}"
    for size, output in zip(sizes, outputs, strict=True):
        now = datetime.fromisoformat(output["now"])
        assert now.utcoffset() == timedelta(hours=5, minutes=30)  # current_time in the timezone asked for
        assert started - timedelta(seconds=5) <= now <= datetime.now(UTC), "the wall clock while the frame ran"
        crowded = size >= crowd
        message = f"{'CROWDED' if crowded else 'quiet'}: {size} people at {now:%H:%M:%S}"  # the time there
        assert output["message"] == message
        assert (output["alert"], output["note"]) == ((message, None) if crowded else (None, message))


def test_an_inner_workflow_runs_as_its_steps_written_out_would(stack: Stack, short_clip: str) -> None:
    """A saved workflow pasted into another (inner_workflow): the same tracked people as its steps written out flat
    beside it on the same frames, with its bound confidence and its default class filter; the parent draws them."""
    _, outputs = run_to_end(stack, wf.init(short_clip, wf.people_tracker_as_inner_workflow()))

    assert len(outputs) == 20 and not [o for o in outputs if "workflow_errors" in o]

    def seen(predictions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(p["class"], p["confidence"], p["x"], p["y"], p["width"], p["height"], p["tracker_id"])
                for p in predictions]

    for output in outputs:
        assert seen(output["people"]["predictions"]) == seen(output["flat"]["predictions"])
        drawn = cv2.imdecode(np.frombuffer(base64.b64decode(output["drawn"]["value"]), np.uint8), cv2.IMREAD_COLOR)
        assert drawn.shape == (576, 768, 3)
    people = [p for o in outputs for p in o["people"]["predictions"]]
    assert len(people) >= 40 and all(p["class"] == "person" and p["confidence"] >= 0.6 for p in people)
    assert len({p["tracker_id"] for p in people}) >= 3


def test_a_failing_step_reports_per_frame_and_the_pipeline_keeps_running(stack: Stack, short_clip: str) -> None:
    pipeline_id, outputs = run_to_end(stack, wf.init(short_clip, wf.failing_step()))

    assert len(outputs) == 20, "every frame still produces its outputs"
    failed = [o for o in outputs if "workflow_errors" in o]
    assert failed, "detections without tracker ids cannot be counted"
    assert failed[0]["count_in"] is None and failed[0]["predictions"]["predictions"]
    [error] = failed[0]["workflow_errors"]
    assert error["step"] == "broken" and "tracker" in error["error_message"].lower()
    report = _ok(call(stack.port, {"type": "status", "pipeline_id": pipeline_id}))["report"]
    assert report["pipeline_state"] == "ENDED"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda w: w["steps"].append({"type": "roboflow_core/sam3@v1", "name": "segment"}),
         "unsupported workflow block type 'roboflow_core/sam3@v1' at "
         "'processing_configuration.workflow_specification.steps[5].type'; supported: "),
        (lambda w: w["steps"][2].update(line_segment=[[0, 300]]),
         "processing_configuration.workflow_specification.steps[2].line_segment"),
        (lambda w: w["steps"][1].update(detections="$steps.nowhere.predictions"),
         "selector '$steps.nowhere.predictions' names no step"),
        (lambda w: w["steps"][0].update(images="$steps.labels.image"), "has a cycle among steps"),
        # CogVLM ran on Roboflow's own inference server: refused, naming the field
        (lambda w: w["steps"].append({"type": "LMM", "name": "lmm", "images": "$inputs.image", "prompt": "Who?",
                                      "lmm_type": "cog_vlm"}),
         "field 'processing_configuration.workflow_specification.steps[5].lmm_type': 'cog_vlm' (CogVLM) ran on "
         "Roboflow's own inference server, which this manager does not have"),
    ],
)
def test_bad_definitions_are_refused_at_init_and_leave_nothing(stack: Stack, mutate: Any, message: str) -> None:
    workflow = wf.counting(LINE)
    mutate(workflow)
    before = _ok(call(stack.port, {"type": "list_pipelines"}))["pipelines"]

    reply = call(stack.port, wf.init(str(VTEST), workflow))

    assert reply["response"]["status"] == "failure" and reply["response"]["error_type"] == "invalid_payload"
    assert message in reply["response"]["error_message"], reply["response"]["error_message"]
    assert _ok(call(stack.port, {"type": "list_pipelines"}))["pipelines"] == before
