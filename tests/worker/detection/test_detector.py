"""The default model on real video: detections, batching, devices, the prediction format."""

import json
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import pytest

from services.worker.detection.detector import DetectionParams, Detector, select_providers, tensorrt_loadable
from services.worker.detection.predictions import to_prediction
from services.worker.models.errors import InferenceDeviceError
from services.worker.models.repository import ModelSpec

Frames = Callable[[str, int], np.ndarray]


@pytest.fixture(scope="module")
def detector(default_model: ModelSpec) -> Detector:
    return Detector(default_model, intra_op_threads=2)


def test_reference_defaults() -> None:
    assert DetectionParams() == DetectionParams(0.5, 0.5, False, 3000, 300)


def test_people_on_vtest_frame_100(detector: Detector, video_frame: Frames) -> None:
    image = video_frame("vtest.avi", 100)
    detections = detector.detect(image, DetectionParams(confidence=0.25))
    names = [detector.model.class_names[i] for i in detections.class_id]
    assert names.count("person") >= 4
    assert detections.xyxy.dtype == np.float32 and detections.xyxy.shape == (len(detections), 4)
    x1, y1, x2, y2 = detections.xyxy.T
    assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= 768).all() and (y2 <= 576).all()
    assert (x2 > x1).all() and (y2 > y1).all()
    people = detections.xyxy[detections.class_id == 0]
    heights, widths = people[:, 3] - people[:, 1], people[:, 2] - people[:, 0]
    assert (heights > 1.5 * widths).all()  # upright pedestrians: the letterbox was undone right
    assert (heights > 50).all()  # full-size boxes (pedestrians here are 65-95 px tall)
    assert np.all(np.diff(detections.confidence) <= 0)


def test_confidence_threshold_applies(detector: Detector, video_frame: Frames) -> None:
    image = video_frame("vtest.avi", 100)
    low = detector.detect(image, DetectionParams(confidence=0.25))
    high = detector.detect(image, DetectionParams(confidence=0.9))
    assert 0 < len(high) < len(low) and (high.confidence >= 0.9).all()
    assert len(detector.detect(image, DetectionParams(confidence=0.25, max_detections=2))) == 2


def test_detections_are_the_same_without_the_early_cut_by_objectness(
        detector: Detector, video_frame: Frames, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.worker.detection import detector as module

    params = DetectionParams(confidence=0.25)
    canvas, transform = detector.preprocess(video_frame("vtest.avi", 100))
    raw = detector.infer(canvas)[0]
    fast = detector.postprocess(raw, transform, params)
    plain_decode = module.decode
    monkeypatch.setattr(module, "decode", lambda output, layout, min_score=None: plain_decode(output, layout))
    slow = detector.postprocess(raw, transform, params)
    assert len(fast) >= 4
    np.testing.assert_array_equal(fast.xyxy, slow.xyxy)
    np.testing.assert_array_equal(fast.confidence, slow.confidence)
    np.testing.assert_array_equal(fast.class_id, slow.class_id)


def test_batch_equals_single(detector: Detector, video_frame: Frames) -> None:
    frames = [video_frame("vtest.avi", 100), video_frame("bikes.mp4", 50)]
    tensors, transforms = zip(*(detector.preprocess(f) for f in frames), strict=True)
    raw = detector.infer(np.concatenate(tensors))
    assert raw.shape == (2, 2535, 85)
    params = DetectionParams(confidence=0.25)
    for index, frame in enumerate(frames):
        batched = detector.postprocess(raw[index], transforms[index], params)
        single = detector.detect(frame, params)
        assert batched.class_id.tolist() == single.class_id.tolist()
        assert batched.xyxy == pytest.approx(single.xyxy, abs=0.05)


def test_prediction_format(detector: Detector, video_frame: Frames) -> None:
    image = video_frame("vtest.avi", 100)
    detections = detector.detect(image, DetectionParams(confidence=0.25))
    prediction = json.loads(json.dumps(to_prediction(detections, detector.model.class_names, 768, 576)))
    assert prediction["image"] == {"width": 768, "height": 576}
    first = prediction["predictions"][0]
    assert set(first) == {"x", "y", "width", "height", "confidence", "class", "class_id", "detection_id"}
    x1, y1, x2, y2 = detections.xyxy[0].tolist()
    assert first["x"] == pytest.approx((x1 + x2) / 2, abs=0.05)
    assert first["height"] == pytest.approx(y2 - y1, abs=0.05)
    assert first["class"] == detector.model.class_names[first["class_id"]]
    assert len({p["detection_id"] for p in prediction["predictions"]}) == len(detections)


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="this onnxruntime has CUDA"
)
@pytest.mark.parametrize("device", ["gpu", "jetson"])
def test_gpu_without_cuda_is_a_clear_error(default_model: ModelSpec, device: str) -> None:
    with pytest.raises(InferenceDeviceError, match="CUDA or TensorRT"):
        Detector(default_model, device=device)


def test_provider_selection() -> None:
    assert select_providers("cpu", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    available = ["CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"]
    assert select_providers("gpu", available, tensorrt=True) == [*available[1::-1], "CPUExecutionProvider"]
    # onnxruntime-gpu lists TensorRT even where libnvinfer is missing (seen on an H200 host): not asked for then.
    assert select_providers("gpu", available, tensorrt=False) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert tensorrt_loadable() is False  # this machine has no TensorRT
    assert select_providers("gpu", available) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(InferenceDeviceError, match="unknown device"):
        select_providers("tpu", available)


def test_tensorrt_keeps_its_engines_in_the_configured_cache_and_other_providers_get_no_options(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from services.worker.detection.detector import provider_options

    cache = tmp_path / "trt"
    options = provider_options("TensorrtExecutionProvider", cache)
    assert options["trt_engine_cache_enable"] == "True"
    assert options["trt_engine_cache_path"] == options["trt_timing_cache_path"] == str(cache)
    assert cache.is_dir()  # created up front: TensorRT does not create it
    assert provider_options("TensorrtExecutionProvider", None) == {}
    assert provider_options("CUDAExecutionProvider", cache) == {}
    assert provider_options("CPUExecutionProvider", cache) == {}


def test_a_detector_on_a_given_runner_opens_no_session_of_its_own(default_model: ModelSpec,
                                                                  detector: Detector) -> None:
    class Recording:
        providers = ["RecordingProvider"]  # noqa: RUF012

        def __init__(self) -> None:
            self.shapes: list[tuple[int, ...]] = []

        def run(self, batch: np.ndarray) -> np.ndarray:
            self.shapes.append(batch.shape)
            return detector.infer(batch)

    runner = Recording()
    remote = Detector(default_model, runner=runner)
    frame = np.zeros((480, 640, 3), np.uint8)
    assert remote.providers == ["RecordingProvider"]
    assert remote.detect(frame, DetectionParams()).xyxy.shape == detector.detect(frame, DetectionParams()).xyxy.shape
    assert runner.shapes == [(1, 416, 416, 3)]  # the letterboxed uint8 canvas: the runner makes the tensor
