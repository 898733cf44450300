"""The whole engine, end to end: real model, real video, real Redis, real UDP and live HTTP streams."""

import json
import socket
import time
from pathlib import Path

import pytest
import redis

from services.core import keys
from services.core.results import decode_entry
from services.core.states import StreamState
from services.worker.detection.detector import DetectionParams, Detector
from services.worker.detection.processor import DetectionProcessor
from services.worker.engine import events
from services.worker.engine.pipeline import InferencePipeline, PipelineConfig
from services.worker.engine.sinks.redis_stream import RedisStreamSink
from services.worker.engine.sinks.udp import UdpSink
from services.worker.engine.source import SourceConfig
from tests.support.redis_server import free_port
from tests.support.streams import http_live_stream
from tests.support.waiting import settled, wait_until

MEDIA = Path("data/media")
BIKES = str(MEDIA / "bikes.mp4")  # 250 frames, 640x272
VTEST = MEDIA / "vtest.avi"


@pytest.fixture(scope="module")
def detector(default_model) -> Detector:  # type: ignore[no-untyped-def]
    return Detector(default_model, intra_op_threads=2)


def _entries(client: redis.Redis, pipeline_id: str) -> list[tuple[list, list]]:  # type: ignore[type-arg]
    return [decode_entry(fields) for _, fields in client.xrange(keys.results_stream(pipeline_id))]


@pytest.mark.parametrize("workers", [1, 2])
def test_file_pipeline_processes_every_frame_in_order_then_ends(
    detector: Detector, redis_client: redis.Redis, running: list[InferencePipeline], workers: int
) -> None:
    config = PipelineConfig(video_references=(BIKES,), inference_workers=workers)
    processor = DetectionProcessor(detector, DetectionParams(confidence=0.3))
    pipeline = InferencePipeline(config, processor, [RedisStreamSink(redis_client, "file", maxlen=1000)])
    running.append(pipeline)
    pipeline.start()
    assert pipeline.wait(timeout=90), "a file pipeline must end by itself"
    assert pipeline.state is StreamState.ENDED
    entries = _entries(redis_client, "file")
    frame_ids = [metadata[0]["frame_id"] for _, metadata in entries]
    assert frame_ids == list(range(1, 251))  # default for files is WAIT/LAZY: nothing lost
    classes = {p["class"] for outputs, _ in entries for p in outputs[0]["predictions"]}
    assert "car" in classes
    first = entries[0][0][0]
    assert first["image"] == {"width": 640, "height": 272}
    for prediction in first["predictions"]:
        assert 0 <= prediction["x"] <= 640 and 0 <= prediction["y"] <= 272
    report = pipeline.status_report()
    assert report["frames_processed"] == 250
    assert report["sources_metadata"][0]["state"] == "ENDED"
    event_types = [u["event_type"] for u in report["video_source_status_updates"]]
    assert events.VIDEO_CONSUMPTION_FINISHED in event_types


def test_status_report_has_the_reference_shape(
    detector: Detector, redis_client: redis.Redis, running: list[InferencePipeline]
) -> None:
    config = PipelineConfig(video_references=(BIKES, str(VTEST)), batch_collection_timeout=0.5)
    sink = RedisStreamSink(redis_client, "status", maxlen=100)
    pipeline = InferencePipeline(config, DetectionProcessor(detector), [sink])
    running.append(pipeline)
    pipeline.start()
    wait_until(lambda: pipeline.watchdog.frames_processed >= 20, timeout=15)
    report = pipeline.status_report()
    assert report["inference_throughput"] > 0
    assert [r["source_id"] for r in report["latency_reports"]] == [0, 1]
    for latency in report["latency_reports"]:
        assert 0 < latency["inference_latency"] <= latency["e2e_latency"]
        assert latency["frame_decoding_latency"] >= 0
    metadata = report["sources_metadata"]
    assert [m["source_id"] for m in metadata] == [0, 1]
    assert metadata[1]["source_properties"]["width"] == 768
    assert metadata[1]["source_properties"]["is_file"] is True
    for update in report["video_source_status_updates"]:
        assert set(update) == {"timestamp", "severity", "event_type", "payload", "context"}
        assert update["severity"] > 10
    outputs, frames_metadata = _entries(redis_client, "status")[-1]
    assert len(outputs) == len(frames_metadata) == 2  # aligned with the sources
    json.dumps(report)  # the report is plain JSON


def test_mute_resume_terminate_on_a_live_stream(
    detector: Detector, redis_client: redis.Redis, running: list[InferencePipeline]
) -> None:
    with http_live_stream(VTEST) as url:
        config = PipelineConfig(video_references=(url,))
        sink = RedisStreamSink(redis_client, "live", maxlen=1000)
        pipeline = InferencePipeline(config, DetectionProcessor(detector), [sink])
        running.append(pipeline)
        pipeline.start()
        stream = keys.results_stream("live")
        wait_until(lambda: redis_client.xlen(stream) >= 5, timeout=15)

        pipeline.mute()
        assert pipeline.state is StreamState.MUTED
        # rounds already inside the pipeline drain, then no more results (the stream delivers 10 a second)
        muted_at = settled(lambda: redis_client.xlen(stream), quiet=2.0, timeout=20)
        assert pipeline.sources[0].state is StreamState.MUTED

        pipeline.resume()
        assert pipeline.state is StreamState.RUNNING
        wait_until(lambda: redis_client.xlen(stream) >= muted_at + 5, timeout=15)

        started = time.monotonic()
        pipeline.terminate(timeout=2.0)
        assert time.monotonic() - started <= 2.5
        assert pipeline.state is StreamState.ENDED
        assert pipeline.wait(0)
        assert pipeline.sources[0].state is StreamState.ENDED


def test_terminate_while_the_camera_is_unreachable(
    detector: Detector, running: list[InferencePipeline]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/live.ts"  # nobody listens
    pipeline = InferencePipeline(PipelineConfig(video_references=(url,)), DetectionProcessor(detector), [])
    running.append(pipeline)
    pipeline.start()
    wait_until(lambda: pipeline.sources[0].state is StreamState.RESTARTING, timeout=15)
    assert not pipeline.wait(0.5), "an offline live stream is not ended by the engine"
    started = time.monotonic()
    pipeline.terminate(timeout=2.0)
    assert time.monotonic() - started <= 2.5
    assert pipeline.state is StreamState.ENDED


def test_terminate_is_idempotent_and_works_before_start(detector: Detector) -> None:
    pipeline = InferencePipeline(PipelineConfig(video_references=(BIKES,)), DetectionProcessor(detector), [])
    pipeline.terminate()
    pipeline.terminate()
    assert pipeline.state is StreamState.ENDED


def test_a_dead_redis_sink_never_stalls_inference_or_the_udp_sink(
    detector: Detector, running: list[InferencePipeline]
) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    udp = UdpSink("127.0.0.1", receiver.getsockname()[1], on_update=lambda u: None)
    config = PipelineConfig(video_references=(BIKES,), source=SourceConfig(max_fps=50))
    pipeline = InferencePipeline(config, DetectionProcessor(detector), [RedisStreamSink(dead, "dead", maxlen=10), udp])
    running.append(pipeline)
    pipeline.start()
    received = []
    while len(received) < 250:
        received.append(json.loads(receiver.recv(65535)))
    assert [d["inference_metadata"]["frame_id"] for d in received] == list(range(1, 251))
    assert pipeline.wait(timeout=30)
    report = pipeline.status_report()
    redis_report = next(s for s in report["sinks"] if s["name"] == "redis_stream")
    assert redis_report["dropped"] > 0 and not redis_report["healthy"]
    errors = [u for u in report["video_source_status_updates"]
              if u["event_type"] == events.INFERENCE_RESULTS_DISPATCHING_ERROR]
    assert errors and errors[0]["payload"]["sink"] == "redis_stream"
    receiver.close()
    dead.close()


def test_credentials_never_reach_the_report(detector: Detector, running: list[InferencePipeline]) -> None:
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/stream"
    pipeline = InferencePipeline(PipelineConfig(video_references=(url,)), DetectionProcessor(detector), [])
    running.append(pipeline)
    pipeline.start()
    wait_until(lambda: any(u["event_type"] == events.SOURCE_ERROR
                            for u in pipeline.status_report()["video_source_status_updates"]), timeout=15)
    text = json.dumps(pipeline.status_report())
    assert "hunter2" not in text and "admin" not in text
    assert "127.0.0.1" in text


class _FailingOnSomeFrames:
    """The real detector, except that inference fails for every 10th round (a corrupt frame, say)."""

    def __init__(self, detector: Detector) -> None:
        self._detector = detector
        self.class_names = detector.class_names
        self.preprocess = detector.preprocess
        self.postprocess = detector.postprocess
        self._calls = 0

    def infer(self, batch):  # type: ignore[no-untyped-def]
        self._calls += 1
        if self._calls % 10 == 0:
            raise RuntimeError("bad tensor")
        return self._detector.infer(batch)


def test_failed_rounds_are_reported_and_skipped_in_order_with_several_workers(
    detector: Detector, redis_client: redis.Redis, running: list[InferencePipeline]
) -> None:
    config = PipelineConfig(video_references=(BIKES,), inference_workers=3)
    pipeline = InferencePipeline(config, DetectionProcessor(_FailingOnSomeFrames(detector)),
                                 [RedisStreamSink(redis_client, "failing", maxlen=1000)])
    running.append(pipeline)
    pipeline.start()
    assert pipeline.wait(timeout=90)
    frame_ids = [metadata[0]["frame_id"] for _, metadata in _entries(redis_client, "failing")]
    assert len(frame_ids) == 225  # 25 of the 250 rounds failed
    assert frame_ids == sorted(frame_ids)
    report = pipeline.status_report()
    assert report["inference_errors"] == 25
    errors = [u for u in report["video_source_status_updates"] if u["event_type"] == events.INFERENCE_ERROR]
    assert errors and errors[0]["payload"]["error_message"] == "bad tensor"


class _HeldAtInference:
    """The real detector, with every inference held at a gate; counts the rounds prepared meanwhile."""

    def __init__(self, detector: Detector) -> None:
        import threading

        self._detector = detector
        self.class_names = detector.class_names
        self.postprocess = detector.postprocess
        self.gate = threading.Event()
        self.prepared = 0
        self.inferring = 0

    def preprocess(self, image):  # type: ignore[no-untyped-def]
        self.prepared += 1
        return self._detector.preprocess(image)

    def infer(self, batch):  # type: ignore[no-untyped-def]
        self.inferring += 1
        assert self.gate.wait(30)
        return self._detector.infer(batch)


def test_a_pipeline_whose_inference_is_held_holds_only_one_prepared_round_beyond_its_inference_threads(
    detector: Detector, redis_client: redis.Redis, running: list[InferencePipeline]
) -> None:
    held = _HeldAtInference(detector)
    config = PipelineConfig(video_references=(BIKES,), source=SourceConfig(buffer_size=64), inference_workers=3)
    pipeline = InferencePipeline(config, DetectionProcessor(held), [RedisStreamSink(redis_client, "held", maxlen=1000)])
    running.append(pipeline)
    pipeline.start()
    # 3 rounds in the inference threads, 1 in the prepared queue, 1 with the collector waiting to queue it
    wait_until(lambda: held.inferring == 3 and held.prepared == 5, timeout=30)
    time.sleep(1.0)  # what a deeper queue would take meanwhile
    assert (held.inferring, held.prepared) == (3, 5)
    decoded = pipeline.sources[0].stats().frames_decoded
    assert decoded <= 5 + 4 + 1  # prepared + a file's read-ahead (FILE_READ_AHEAD) + the frame being put
    held.gate.set()
    assert pipeline.wait(timeout=90)
    assert len(_entries(redis_client, "held")) == 250  # nothing lost to the bounds
