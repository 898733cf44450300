"""The batching core of the inference service, with small scripted runners (no socket, no model)."""

import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from services.worker.inference.service import BadRequestError, InferenceService, ServiceStoppedError
from services.worker.models.repository import TASK_CLASSIFICATION, ModelSpec
from tests.support.waiting import wait_until

SIZE = 8


class _Repository:
    """Resolves any id to a tiny 3x8x8 'model'; ids starting with 'missing' are not there."""

    def resolve(self, model_id: str) -> ModelSpec:
        if model_id.startswith("missing"):
            from services.worker.models.errors import ModelNotFoundError

            raise ModelNotFoundError(model_id)
        return ModelSpec(model_id, Path("/dev/null"), ("a",), "images", SIZE, SIZE, None, "RGB", 1.0, "", "", "")


class _Runner:
    """Output per frame = the frame's sum; fails a batch holding a NaN; may be held at a gate."""

    providers: ClassVar[list[str]] = ["ScriptedProvider"]

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.running = threading.Event()
        self.batches: list[int] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.running.set()
        self.gate.wait(10)
        self.batches.append(len(batch))
        if np.isnan(batch).any():
            raise RuntimeError("NaN in the batch")
        return np.asarray(batch.reshape(len(batch), -1).sum(axis=1, keepdims=True))


def _frames(value: float, count: int = 1) -> np.ndarray:
    return np.full((count, 3, SIZE, SIZE), value, dtype=np.float32)


def _service(runner: _Runner, runners: int = 1, max_batch: int = 8, loader=None) -> InferenceService:  # type: ignore[no-untyped-def]
    return InferenceService(_Repository(), loader or (lambda spec: runner), runners, max_batch)  # type: ignore[arg-type]


def _submit_all(service: InferenceService, values: list[float], results: dict[float, object],
                live: bool = False) -> list[threading.Thread]:
    """Each value's request from a thread of its own; ``live``: with a deadline, as a live pipeline's."""
    def call(value: float) -> None:
        try:
            deadline = time.monotonic() + 60 if live else None
            results[value] = float(service.infer("m/1", _frames(value), deadline=deadline)[0, 0])
        except Exception as exc:
            results[value] = exc

    threads = [threading.Thread(target=call, args=(value,)) for value in values]
    for thread in threads:
        thread.start()
    return threads


def _queued_behind_one(service: InferenceService, runner: _Runner, first: float,
                       values: list[float]) -> dict[float, object]:
    """``first`` runs with the runner held at its gate, ``values`` queue behind it, then the gate opens."""
    runner.gate.clear()
    results: dict[float, object] = {}
    threads = _submit_all(service, [first], results)
    assert runner.running.wait(5)
    threads += _submit_all(service, values, results)
    wait_until(lambda: service.stats()["queued"] == len(values))
    runner.gate.set()
    for thread in threads:
        thread.join(10)
    return results


def test_requests_that_wait_while_the_runner_is_busy_form_one_batch_and_each_gets_its_own_output() -> None:
    runner = _Runner()
    service = _service(runner, max_batch=8)
    results = _queued_behind_one(service, runner, 1.0, [2.0, 3.0, 4.0, 5.0, 6.0])
    assert runner.batches == [1, 5]
    assert results == {value: value * 3 * SIZE * SIZE for value in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)}
    stats = service.stats()
    assert stats["batch_sizes"] == {"1": 1, "5": 1}
    batch_ms = stats["batch_ms"]  # the first batch ran while the others queued behind the gate: the slow one
    assert batch_ms["count"] == 2 and 0 <= batch_ms["p50"] <= batch_ms["p99"] and batch_ms["p99"] > 0
    service.stop()


def test_a_batch_never_exceeds_max_batch_frames() -> None:
    runner = _Runner()
    service = _service(runner, max_batch=4)
    results = _queued_behind_one(service, runner, 0.0, [float(value) for value in range(1, 10)])
    assert runner.batches == [1, 4, 4, 1]
    assert len(results) == 10 and all(not isinstance(r, Exception) for r in results.values())
    service.stop()


def test_one_bad_frame_fails_only_its_own_request_not_the_batch_it_was_in() -> None:
    runner = _Runner()
    service = _service(runner)
    results = _queued_behind_one(service, runner, 1.0, [2.0, float("nan"), 4.0])
    failed = [value for value, result in results.items() if isinstance(result, Exception)]
    assert len(failed) == 1 and np.isnan(failed[0])
    assert results[2.0] == 2.0 * 3 * SIZE * SIZE and results[4.0] == 4.0 * 3 * SIZE * SIZE
    assert service.stats()["failed_requests"] == 1
    service.stop()


def test_a_tensor_of_the_wrong_shape_or_type_is_refused_before_it_joins_a_batch() -> None:
    runner = _Runner()
    service = _service(runner)
    with pytest.raises(BadRequestError, match=r"expected \[B, 3, 8, 8\]"):
        service.infer("m/1", np.zeros((1, 3, SIZE, SIZE + 1), np.float32))
    with pytest.raises(BadRequestError, match="float32"):
        service.infer("m/1", np.zeros((1, 3, SIZE, SIZE), np.float64))
    with pytest.raises(BadRequestError):
        service.infer("m/1", np.zeros((65, 3, SIZE, SIZE), np.float32))
    assert runner.batches == []
    assert float(service.infer("m/1", _frames(1.0))[0, 0]) == 3 * SIZE * SIZE
    service.stop()


def test_a_detectors_canvases_reach_the_runner_as_they_are_and_mixed_batches_become_tensors() -> None:
    runner = _Runner()
    service = _service(runner)
    canvas = np.full((1, SIZE, SIZE, 3), 51, dtype=np.uint8)  # 51 / 255 = 0.2
    assert float(service.infer("m/1", canvas)[0, 0]) == 51 * 3 * SIZE * SIZE  # alone: the runner converts
    with pytest.raises(BadRequestError, match=r"expected \[B, 8, 8, 3\]"):
        service.infer("m/1", np.zeros((1, SIZE, SIZE + 1, 3), np.uint8))
    runner.gate.clear()  # a tensor runs while a canvas and another tensor queue behind it: one batch of both kinds
    runner.running.clear()  # set by the runs above
    results: dict[str, object] = {}

    def call(name: str, batch: np.ndarray) -> None:
        results[name] = float(service.infer("m/1", batch)[0, 0])

    first = threading.Thread(target=call, args=("first", _frames(1.0)))
    first.start()
    assert runner.running.wait(5)
    queued = [threading.Thread(target=call, args=(name, batch))
              for name, batch in (("canvas", canvas), ("tensor", _frames(2.0)))]
    for thread in queued:
        thread.start()
    wait_until(lambda: service.stats()["queued"] == 2)
    runner.gate.set()
    for thread in (first, *queued):
        thread.join(10)
    assert runner.batches[-2:] == [1, 2]
    assert results["canvas"] == pytest.approx(0.2 * 3 * SIZE * SIZE, rel=1e-5)  # converted: RGB / 255
    assert results["tensor"] == 2.0 * 3 * SIZE * SIZE and results["first"] == 3 * SIZE * SIZE
    service.stop()


def test_canvases_are_refused_for_a_classifier_which_normalises_its_own_input() -> None:
    class Classifiers(_Repository):
        def resolve(self, model_id: str) -> ModelSpec:
            from dataclasses import replace

            return replace(super().resolve(model_id), layout=None, task_type=TASK_CLASSIFICATION)

    runner = _Runner()
    service = InferenceService(Classifiers(), lambda spec: runner, 1, 8)  # type: ignore[arg-type]
    with pytest.raises(BadRequestError, match=r"expected a float32 tensor$"):
        service.infer("m/1", np.zeros((1, SIZE, SIZE, 3), np.uint8))
    assert float(service.infer("m/1", _frames(1.0))[0, 0]) == 3 * SIZE * SIZE
    assert runner.batches == [1]
    service.stop()


def test_a_cold_model_load_does_not_stall_requests_for_a_loaded_model() -> None:
    runner = _Runner()
    release = threading.Event()

    def loader(spec: ModelSpec) -> _Runner:
        if spec.model_id == "slow/1":
            release.wait(10)
        return runner

    service = _service(runner, loader=loader)
    service.load("m/1")
    loading = threading.Thread(target=service.load, args=("slow/1",))
    loading.start()
    for value in range(5):  # served while slow/1 is still loading
        assert float(service.infer("m/1", _frames(float(value)))[0, 0]) == value * 3 * SIZE * SIZE
    assert loading.is_alive()
    release.set()
    loading.join(10)
    assert service.stats()["models"] == ["m/1", "slow/1"]
    service.stop()


def test_a_missing_model_raises_its_error_and_a_later_registration_is_found() -> None:
    runner = _Runner()
    service = _service(runner)
    from services.worker.models.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError):
        service.load("missing/1")
    assert service.stats()["models"] == []
    service.stop()


def test_stopping_fails_the_waiting_requests_instead_of_leaving_them_hanging() -> None:
    runner = _Runner()
    service = _service(runner)
    runner.gate.clear()
    results: dict[float, object] = {}
    threads = _submit_all(service, [1.0], results)
    assert runner.running.wait(5)
    threads += _submit_all(service, [2.0, 3.0], results)
    wait_until(lambda: service.stats()["queued"] == 2)
    stopper = threading.Thread(target=service.stop)
    stopper.start()
    wait_until(lambda: isinstance(results.get(2.0), Exception) and isinstance(results.get(3.0), Exception))
    assert isinstance(results[2.0], ServiceStoppedError)
    runner.gate.set()
    stopper.join(10)
    for thread in threads:
        thread.join(10)
    with pytest.raises(ServiceStoppedError):
        service.infer("m/1", _frames(1.0))


def test_two_runners_run_two_batches_at_once() -> None:
    runner = _Runner()
    service = _service(runner, runners=2, max_batch=1)
    runner.gate.clear()
    results: dict[float, object] = {}
    threads = _submit_all(service, [1.0, 2.0], results)
    wait_until(lambda: service.stats()["queued"] == 0)  # both taken while the gate is closed: two runs in flight
    runner.gate.set()
    for thread in threads:
        thread.join(10)
    assert runner.batches == [1, 1] and len(results) == 2
    service.stop()


def test_a_request_whose_deadline_passes_in_the_queue_is_answered_without_running() -> None:
    import time

    from services.worker.inference.service import DeadlineMissedError

    runner = _Runner()
    service = _service(runner)
    runner.gate.clear()
    results: dict[float, object] = {}
    threads = _submit_all(service, [1.0], results)
    assert runner.running.wait(5)

    def call(value: float, deadline: float | None) -> None:
        try:
            results[value] = float(service.infer("m/1", _frames(value), deadline=deadline)[0, 0])
        except Exception as exc:
            results[value] = exc

    late = threading.Thread(target=call, args=(2.0, time.monotonic() + 0.05))
    patient = threading.Thread(target=call, args=(3.0, time.monotonic() + 60))
    for thread in (late, patient):
        thread.start()
    wait_until(lambda: service.stats()["queued"] == 2)
    time.sleep(0.1)  # the first deadline passes while the runner is busy
    runner.gate.set()
    for thread in [*threads, late, patient]:
        thread.join(10)
    assert isinstance(results[2.0], DeadlineMissedError)
    assert results[3.0] == 3.0 * 3 * SIZE * SIZE
    assert runner.batches == [1, 1]  # the late request never reached the model
    assert service.stats()["missed_deadlines"] == 1
    service.stop()


def test_idle_runners_split_the_waiting_frames_instead_of_one_batching_them_all() -> None:
    import time

    from services.worker.inference.service import _Request

    service = _service(_Runner(), runners=2, max_batch=8)
    service.load("m/1")
    wait_until(lambda: service._idle == 2)  # both runners wait for work
    model = service._models["m/1"]
    with service._cond:  # as a third runner would see it: two others idle, four frames waiting
        model.queue.extend(_Request(_frames(float(value)), time.monotonic()) for value in range(4))
        taken = service._take()
        assert taken is not None and [r.frames for r in taken[1]] == [1, 1]  # ceil(4 / 3) = 2 frames
        service._idle = 0  # nobody else idle: a runner takes everything up to max_batch
        taken = service._take()
        assert taken is not None and len(taken[1]) == 2
        service._idle = 2
    service.stop()


def test_turns_keep_at_most_one_request_per_runner_and_model_and_come_in_order() -> None:
    runner = _Runner()
    service = _service(runner, runners=2)  # room for 2: queued + running + granted
    first, second = service.take_turn("m/1", 5), service.take_turn("m/1", 5)
    order: list[str] = []

    def wait_turn(name: str) -> None:
        service.take_turn("m/1", 10)
        order.append(name)

    third = threading.Thread(target=wait_turn, args=("third",))
    third.start()
    wait_until(lambda: len(service._models["m/1"].turn_waiters) == 1)
    fourth = threading.Thread(target=wait_turn, args=("fourth",))
    fourth.start()
    wait_until(lambda: len(service._models["m/1"].turn_waiters) == 2)
    assert order == []  # no room: two turns are out
    service.infer("m/1", _frames(1.0), turn=first)  # the turn becomes a request; once it ran, room for one
    wait_until(lambda: order == ["third"])
    service.infer("m/1", _frames(2.0), turn=second)
    wait_until(lambda: order == ["third", "fourth"])
    for thread in (third, fourth):
        thread.join(10)
    service.stop()


def test_a_turn_never_used_lapses_and_frees_its_room(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.worker.inference import service as module

    monkeypatch.setattr(module, "TURN_TTL", 0.2)
    service = _service(_Runner(), runners=2)
    service.take_turn("m/1", 5)
    service.take_turn("m/1", 5)  # both turns held by a pipeline that died
    assert isinstance(service.take_turn("m/1", 5), str)  # granted once they lapsed
    assert service.stats()["lapsed_turns"] == 2
    service.take_turn("m/1", 5)
    with pytest.raises(TimeoutError):
        service.take_turn("m/1", 0.05)  # room for 2, both granted, and a lapse takes 0.2 s
    service.stop()


def _live_service(side_by_side: _Runner, live: _Runner) -> InferenceService:
    return InferenceService(_Repository(), lambda spec: side_by_side, 2, 8, latency_loader=lambda spec: live)  # type: ignore[arg-type]


def _live_ready(service: InferenceService) -> InferenceService:
    """The service once a live pipeline's first turn had its model's second session loaded."""
    service.take_turn("m/1", 5)
    wait_until(lambda: service.stats()["live_only"])
    service._models["m/1"].grants.clear()  # the turn is not used
    return service


def test_live_only_load_runs_one_batch_at_a_time_on_the_live_session_until_a_plain_request_comes() -> None:
    side_by_side, live = _Runner(), _Runner()
    service = _live_ready(_live_service(side_by_side, live))
    assert service.stats()["live_sessions"] == ["m/1"]
    live.gate.clear()
    results: dict[float, object] = {}
    threads = _submit_all(service, [1.0], results, live=True)
    assert live.running.wait(5)
    threads += _submit_all(service, [2.0], results, live=True)
    wait_until(lambda: service.stats()["queued"] == 1)
    time.sleep(0.1)
    assert service.stats()["queued"] == 1, "the second runner waits: one batch at a time"
    live.gate.set()
    for thread in threads:
        thread.join(10)
    assert results == {1.0: 3 * SIZE * SIZE, 2.0: 2 * 3 * SIZE * SIZE}
    assert live.batches == [1, 1] and side_by_side.batches == []
    assert service.stats()["live_only_batches"] == 2

    side_by_side.gate.clear()  # a request without a deadline (a file): runs side by side again, at once
    plain: dict[float, object] = {}
    threads = _submit_all(service, [3.0], plain)
    assert side_by_side.running.wait(5)
    assert service.stats()["live_only"] is False
    threads += _submit_all(service, [4.0], plain, live=True)
    wait_until(lambda: service.stats()["queued"] == 0)  # the live request runs beside it on the other runner
    side_by_side.gate.set()
    for thread in threads:
        thread.join(10)
    assert side_by_side.batches == [1, 1] and live.batches == [1, 1]
    service.stop()


def test_live_only_load_gives_one_turn_at_a_time() -> None:
    service = _live_ready(_live_service(_Runner(), _Runner()))
    token = service.take_turn("m/1", 5)
    with pytest.raises(TimeoutError):
        service.take_turn("m/1", 0.1)  # room for one while the load is live-only
    service.infer("m/1", _frames(1.0), turn=token, deadline=time.monotonic() + 60)
    assert isinstance(service.take_turn("m/1", 5), str)
    service.stop()


def test_one_runner_has_no_live_only_mode() -> None:
    side_by_side, live = _Runner(), _Runner()
    service = InferenceService(_Repository(), lambda spec: side_by_side, 1, 8, latency_loader=lambda spec: live)  # type: ignore[arg-type]
    results: dict[float, object] = {}
    for thread in _submit_all(service, [1.0], results, live=True):
        thread.join(10)
    assert side_by_side.batches == [1] and live.batches == [] and service.stats()["live_only"] is False
    service.stop()


def test_the_second_session_is_loaded_once_when_the_first_live_pipeline_asks_and_the_runs_stay_side_by_side_meanwhile(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from services.worker.inference import service as module

    monkeypatch.setattr(module, "LIVE_MODE_HOLD", 0.2)
    side_by_side, live = _Runner(), _Runner()
    loads: list[str] = []
    loading = threading.Event()

    def latency_loader(spec: object) -> _Runner:
        loads.append("live")
        loading.wait(10)
        return live

    service = InferenceService(_Repository(), lambda spec: side_by_side, 2, 8, latency_loader=latency_loader)  # type: ignore[arg-type]
    for thread in _submit_all(service, [1.0], {}):  # a file's request: no second session for it
        thread.join(10)
    assert loads == [] and service.stats()["live_sessions"] == [] and service.stats()["live_only"] is False

    results: dict[float, object] = {}
    for thread in _submit_all(service, [2.0, 3.0], results, live=True):  # loading: these run side by side
        thread.join(10)
    assert results == {2.0: 2 * 3 * SIZE * SIZE, 3.0: 3 * 3 * SIZE * SIZE}
    assert loads == ["live"] and live.batches == [] and service.stats()["live_only"] is False
    loading.set()
    wait_until(lambda: service.stats()["live_sessions"] == ["m/1"])
    time.sleep(0.3)  # the file's request is older than the hold
    for thread in _submit_all(service, [4.0], results, live=True):
        thread.join(10)
    assert live.batches == [1] and loads == ["live"] and service.stats()["live_only"] is True
    service.stop()


def test_a_second_session_that_fails_to_load_leaves_live_load_side_by_side(caplog: pytest.LogCaptureFixture) -> None:
    side_by_side = _Runner()

    def latency_loader(spec: object) -> _Runner:
        raise MemoryError("no room for a second session")

    service = InferenceService(_Repository(), lambda spec: side_by_side, 2, 8, latency_loader=latency_loader)  # type: ignore[arg-type]
    service.take_turn("m/1", 5)
    service._models["m/1"].grants.clear()
    wait_until(lambda: "no live-only session for m/1 (no room for a second session)" in caplog.text)
    results: dict[float, object] = {}
    for thread in _submit_all(service, [1.0, 2.0], results, live=True):
        thread.join(10)
    assert len(results) == 2 and side_by_side.batches and service.stats()["live_only"] is False
    service.stop()
