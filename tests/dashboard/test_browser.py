"""The dashboard in a real headless browser (Debian's chromium driven through its chromedriver) against the
real stack: `python -m services.manager`, a Celery worker running the ONNX model on real video, and
`python -m services.api`, on a redis-server of their own. One browser session for the module; the tests run
in order on the pipeline the first one starts. The webcam view's tests send Chromium's fake camera (playing
vtest.avi's first frames) over WebRTC to a pipeline of the same worker and read back its video and data channel.

A missing browser or driver fails these tests (``make setup`` installs both): the page is part of the product.
Set ``DASHBOARD_SCREENSHOT=docs/dashboard.png`` to also write the screenshot there (the README shows it).
"""

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select

from services.client import ManagerClient
from tests.support import workflow_definitions as wf
from tests.support.redis_server import running_redis
from tests.support.stack import Stack, running_stack
from tests.support.waiting import wait_until
from tools.payloads import MODEL_ID, newer_init

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
VTEST = "data/media/vtest.avi"  # 768x576: previews are 480x360
WINDOW = (1280, 720)
DOCS_SETTLE_S = 40  # with DASHBOARD_SCREENSHOT set: seconds of samples in the pictured sparklines
CAMERA = (768, 576)  # the webcam tests' fake camera plays vtest.avi's first frames
CAMERA_FPS = 10
CAMERA_FRAMES = 30


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_redis() as redis_server, running_stack(redis_server.url) as running:
        running.start_manager()
        # Four slots: the pipeline of the tests, the form's failed start (its slot frees once its process is
        # recycled), the form's pipeline and the webcam's.
        running.start_worker("cpu", "pipelines.cpu", concurrency=4)
        yield running


@pytest.fixture(scope="module")
def api_url(stack: Stack) -> str:
    return stack.start_api()


@pytest.fixture(scope="module")
def manager(stack: Stack) -> ManagerClient:
    return ManagerClient("127.0.0.1", stack.port, timeout=10)


@pytest.fixture(scope="module")
def pipeline_id(api_url: str, manager: ManagerClient) -> Iterator[str]:
    """A pipeline started by the test (not through the page), on the sample video at 5 fps (about 160 s)."""
    response = httpx.post(f"{api_url}/inference_pipelines/initialise", json=newer_init(VTEST, max_fps=5), timeout=60)
    assert response.status_code == 200, response.text
    started: str = response.json()["context"]["pipeline_id"]
    yield started
    if started in manager.list_pipelines().pipelines:
        manager.terminate(started)


@pytest.fixture(scope="module")
def camera_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake camera's video: vtest.avi's first frames as a Y4M file (Chromium loops it), so the detect
    workflow finds people in what the page sends."""
    path = tmp_path_factory.mktemp("camera") / "vtest.y4m"
    capture = cv2.VideoCapture(VTEST)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{CAMERA[0]} H{CAMERA[1]} F{CAMERA_FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(CAMERA_FRAMES):
            ok, frame = capture.read()
            assert ok and frame.shape[1::-1] == CAMERA, "vtest.avi: 768x576, 30 frames at least"
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    capture.release()
    return path


@pytest.fixture(scope="module")
def browser(camera_video: Path) -> Iterator[WebDriver]:
    for required in (CHROMIUM, CHROMEDRIVER):
        if not required.is_file():
            pytest.fail(f"{required} is missing: run tools/install_system_deps.sh (Debian's chromium, chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars", "--no-first-run",
                     "--disable-extensions", "--disable-background-networking", "--disable-sync",
                     # The webcam view: a fake camera playing a file, its permission granted, and host
                     # candidates with plain IPs (not mDNS names).
                     "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={camera_video}",
                     "--use-fake-ui-for-media-stream", "--disable-features=WebRtcHideLocalIpsWithMdns"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page(browser: WebDriver, api_url: str) -> WebDriver:
    browser.get(f"{api_url}/")  # redirected to /dashboard
    wait_until(lambda: browser.execute_script("return document.readyState") == "complete", timeout=20)
    assert browser.current_url == f"{api_url}/dashboard"
    return browser


def _eventually(read: Callable[[], Any], timeout: float = 30, interval: float = 0.2,
                what: str = "condition") -> Any:
    """The first truthy value of ``read()`` (a vanished DOM node just means try again)."""
    value: list[Any] = [None]

    def attempt() -> bool:
        try:
            value[0] = read()
        except (StaleElementReferenceException, WebDriverException):
            return False
        return bool(value[0])

    wait_until(attempt, timeout=timeout, interval=interval, message=lambda: f"{what} not met within {timeout} s")
    return value[0]


def _card(page: WebDriver, pipeline_id: str) -> WebElement | None:
    found = page.find_elements(By.CSS_SELECTOR, f'article.pipeline[data-pipeline-id="{pipeline_id}"]')
    return found[0] if found else None


def _shown_state(page: WebDriver, pipeline_id: str) -> str | None:
    card = _card(page, pipeline_id)
    return None if card is None else card.find_element(By.CSS_SELECTOR, ".state").text


def _manager_state(manager: ManagerClient, pipeline_id: str) -> str | None:
    return manager.status(pipeline_id).report.pipeline_state


def _click(page: WebDriver, pipeline_id: str, action: str) -> None:
    card = _card(page, pipeline_id)
    assert card is not None
    button = card.find_element(By.CSS_SELECTOR, f'button[data-action="{action}"]')
    _eventually(button.is_enabled, timeout=15, what=f"{action} button enabled")
    button.click()


def _preview_loaded(page: WebDriver, pipeline_id: str) -> bool:
    return bool(page.execute_script(
        "const img = document.querySelector(`article[data-pipeline-id='${arguments[0]}'] .preview-img`);"
        "return img !== null && !img.hidden && img.complete && img.naturalWidth > 0;", pipeline_id))


def test_the_page_lists_the_pipeline_with_its_preview(page: WebDriver, pipeline_id: str, api_url: str,
                                                      tmp_path: Path) -> None:
    card = _eventually(lambda: _card(page, pipeline_id), what="the pipeline's card")
    assert card.find_element(By.CSS_SELECTOR, ".pipeline-id").text == pipeline_id
    _eventually(lambda: _shown_state(page, pipeline_id) == "RUNNING", what="RUNNING shown")
    assert card.find_element(By.CSS_SELECTOR, ".device").text == "cpu"
    assert card.find_element(By.CSS_SELECTOR, ".owner").text.startswith("cpu@test:")
    assert card.find_element(By.CSS_SELECTOR, ".sources tbody td:nth-child(2)").text == VTEST

    _eventually(lambda: _preview_loaded(page, pipeline_id), timeout=40, what="a loaded preview image")
    natural = page.execute_script(
        "const img = document.querySelector(`article[data-pipeline-id='${arguments[0]}'] .preview-img`);"
        "return [img.naturalWidth, img.naturalHeight];", pipeline_id)
    assert natural == [480, 360]
    jpeg = httpx.get(f"{api_url}/inference_pipelines/{pipeline_id}/preview.jpg", timeout=10)
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(jpeg.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (360, 480, 3)  # the source's 4:3, 480 px wide

    # A few samples for the sparklines and the decode fps, then the picture for the docs.
    _eventually(lambda: card.find_element(By.CSS_SELECTOR, ".fps-spark path").get_attribute("d").count("L") >= 3,
                what="a drawn fps sparkline")
    decode_fps = card.find_element(By.CSS_SELECTOR, ".sources tbody td:nth-child(4)")
    _eventually(lambda: re.fullmatch(r"\d+\.\d", decode_fps.text), what="a decode fps")
    target = os.environ.get("DASHBOARD_SCREENSHOT")
    if target:  # the docs' picture: let the sparklines fill for a while first
        time.sleep(DOCS_SETTLE_S)
    screenshot = tmp_path / "dashboard.png"
    assert page.save_screenshot(str(screenshot))
    png = cv2.imread(str(screenshot))
    assert png is not None and png.shape[1] == WINDOW[0]
    if target:
        shutil.copyfile(screenshot, target)


def test_pause_and_resume_buttons(page: WebDriver, pipeline_id: str, manager: ManagerClient) -> None:
    _eventually(lambda: _shown_state(page, pipeline_id) == "RUNNING", what="RUNNING shown")
    _click(page, pipeline_id, "pause")
    _eventually(lambda: _manager_state(manager, pipeline_id) == "MUTED", what="MUTED in the manager")
    _eventually(lambda: _shown_state(page, pipeline_id) == "MUTED", what="MUTED shown")

    _click(page, pipeline_id, "resume")
    _eventually(lambda: _manager_state(manager, pipeline_id) == "RUNNING", what="RUNNING in the manager")
    _eventually(lambda: _shown_state(page, pipeline_id) == "RUNNING", what="RUNNING shown again")


def _submit(page: WebDriver, video: str, max_fps: str) -> str:
    form = page.find_element(By.ID, "start-form")
    for name, value in (("video_reference", video), ("model_id", MODEL_ID), ("max_fps", max_fps)):
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    result = page.find_element(By.ID, "start-result")
    page.execute_script("arguments[0].textContent = ''", result)
    form.find_element(By.ID, "start-button").click()
    text: str = _eventually(lambda: result.text if result.text.startswith(("started", "not started")) else "",
                            timeout=70, what="the start form's answer")
    return text


def test_start_from_the_form_then_terminate(page: WebDriver, pipeline_id: str, manager: ManagerClient) -> None:
    # An error is shown as text: markup in what the user typed (echoed by the manager) is never HTML.
    hostile = "data/media/<img src=x id=injected>.avi"
    answer = _submit(page, hostile, "5")
    assert answer.startswith("not started: 404") and "<img src=x id=injected>" in answer
    assert page.find_elements(By.ID, "injected") == []

    answer = _submit(page, VTEST, "5")
    assert answer.startswith("started ")
    started = answer.removeprefix("started ")
    assert started != pipeline_id and started in manager.list_pipelines().pipelines
    _eventually(lambda: _card(page, started), what="the new pipeline's card")
    assert _card(page, pipeline_id) is not None  # the first one is still listed

    _click(page, started, "terminate")  # asks for confirmation
    terminate = _card(page, started).find_element(By.CSS_SELECTOR, 'button[data-action="terminate"]')  # type: ignore[union-attr]
    assert terminate.text == "Confirm terminate"
    assert started in manager.list_pipelines().pipelines
    terminate.click()
    _eventually(lambda: started not in manager.list_pipelines().pipelines, what="terminated in the manager")
    _eventually(lambda: _card(page, started) is None, what="the card gone from the page")
    assert _card(page, pipeline_id) is not None


# ---------------------------------------------------------------------------------------------- the webcam view

def _show_view(page: WebDriver, view: str) -> None:
    page.find_element(By.CSS_SELECTOR, f'.views button[data-view="{view}"]').click()
    _eventually(lambda: page.find_element(By.ID, f"view-{view}").is_displayed(), what=f"the {view} view shown")


def _start_webcam(page: WebDriver) -> str:
    result = page.find_element(By.ID, "webcam-result")
    page.execute_script("arguments[0].textContent = ''", result)
    _eventually(page.find_element(By.ID, "webcam-start").is_enabled, what="Start enabled")
    page.find_element(By.ID, "webcam-start").click()
    text: str = _eventually(lambda: result.text if result.text.startswith(("started", "not started")) else "",
                            timeout=70, what="the webcam start's answer")
    return text


def _webcam_read(page: WebDriver) -> dict[str, Any]:
    """What the page shows of the data channel, read at one instant (one message's drawing)."""
    shown: dict[str, Any] = page.execute_script(
        "const rows = Array.from(document.querySelectorAll('#webcam-counts tbody tr'));"
        "return {messages: Number(document.getElementById('webcam-counts').dataset.messages),"
        "        rows: rows.map((row) => [row.cells[0].textContent, Number(row.cells[1].textContent)]),"
        "        total: document.getElementById('webcam-total').textContent,"
        "        message: document.getElementById('webcam-message').textContent};")
    return shown


def _video(page: WebDriver, which: str) -> dict[str, Any]:
    shown: dict[str, Any] = page.execute_script(
        "const video = document.getElementById(arguments[0]);"
        "return {size: [video.videoWidth, video.videoHeight], attached: video.srcObject !== null,"
        "        frames: video.getVideoPlaybackQuality().totalVideoFrames};", f"webcam-{which}")
    return shown


def _mean_colour(page: WebDriver, which: str) -> list[float]:
    """The mean RGB of the video's current frame, drawn into a canvas."""
    colour: list[float] = page.execute_script(
        "const video = document.getElementById(arguments[0]);"
        "const canvas = document.createElement('canvas');"
        "canvas.width = video.videoWidth; canvas.height = video.videoHeight;"
        "const context = canvas.getContext('2d');"
        "context.drawImage(video, 0, 0);"
        "const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;"
        "const sums = [0, 0, 0];"
        "for (let i = 0; i < pixels.length; i += 4) { sums[0] += pixels[i]; sums[1] += pixels[i + 1];"
        " sums[2] += pixels[i + 2]; }"
        "return sums.map((sum) => sum / (pixels.length / 4));", f"webcam-{which}")
    return colour


def test_webcam_through_the_detect_workflow_then_stop(page: WebDriver, pipeline_id: str,
                                                      manager: ManagerClient) -> None:
    _show_view(page, "webcam")
    assert page.current_url.endswith("/dashboard#webcam")
    Select(page.find_element(By.ID, "webcam-workflow")).select_by_value("builtin")
    assert Select(page.find_element(By.ID, "webcam-stream-output")).first_selected_option.text == "annotated"
    assert Select(page.find_element(By.ID, "webcam-data-output")).first_selected_option.text == "predictions"
    max_fps = page.find_element(By.CSS_SELECTOR, '#webcam-form input[name="max_fps"]')
    max_fps.clear()
    max_fps.send_keys("5")  # the 2-core machine also runs the browser's encoder and decoder

    answer = _start_webcam(page)
    assert answer.startswith("started "), answer
    webcam_id = answer.removeprefix("started ")
    assert webcam_id != pipeline_id and webcam_id in manager.list_pipelines().pipelines
    assert page.find_element(By.ID, "webcam-pipeline").text == webcam_id
    assert page.find_element(By.ID, "webcam-start").is_enabled() is False

    # The video that comes back: the annotated frame, at the camera's size, and it keeps coming.
    remote = _eventually(lambda: _video(page, "remote") if _video(page, "remote")["size"][0] > 0 else None,
                         timeout=60, what="a frame of the returned video")
    assert remote["size"] == _video(page, "local")["size"] == list(CAMERA)
    # The camera's picture, not a placeholder: about the same mean colour (other frames of the loop, VP8 twice).
    back, sent = _mean_colour(page, "remote"), _mean_colour(page, "local")
    assert min(back) > 30 and all(abs(b - s) < 20 for b, s in zip(back, sent, strict=True)), (back, sent)
    _eventually(lambda: _video(page, "remote")["frames"] >= remote["frames"] + 5, what="more returned frames")
    assert page.find_element(By.ID, "webcam-remote-size").text == "{}\N{MULTIPLICATION SIGN}{}".format(*CAMERA)

    # The data channel: one JSON message per processed frame, the detections output as the reference has it,
    # and the page counts each message's detections by class.
    first = _eventually(lambda: _webcam_read(page) if _webcam_read(page)["messages"] >= 1 else None,
                        timeout=30, what="a data-channel message")
    shown = _eventually(lambda: (lambda now: now if now["messages"] >= first["messages"] + 3 and now["rows"]
                                 else None)(_webcam_read(page)), what="counts of later messages' detections")
    message = json.loads(shown["message"])
    assert message["image"] == {"width": CAMERA[0], "height": CAMERA[1]}
    for prediction in message["predictions"]:
        assert isinstance(prediction["class"], str) and 0 <= prediction["confidence"] <= 1
    classes = [prediction["class"] for prediction in message["predictions"]]
    assert "person" in classes  # vtest.avi: people walking
    by_count = sorted(set(classes), key=lambda name: (-classes.count(name), name))  # as the page orders them
    assert shown["rows"] == [[name, classes.count(name)] for name in by_count]
    count = len(classes)
    assert shown["total"] == f"· {count} object{'' if count == 1 else 's'}"

    # The pipeline is a pipeline like any other: RUNNING here, in the manager and in the pipelines view.
    _eventually(lambda: page.find_element(By.ID, "webcam-state").text == "RUNNING", what="RUNNING in the view")
    assert _manager_state(manager, webcam_id) == "RUNNING"
    frames_before = _video(page, "remote")["frames"]
    _show_view(page, "pipelines")
    _eventually(lambda: _shown_state(page, webcam_id) == "RUNNING", what="the webcam's pipeline listed RUNNING")
    assert _card(page, webcam_id).find_element(By.CSS_SELECTOR, ".sources tbody td:nth-child(2)").text  # type: ignore[union-attr]
    _show_view(page, "webcam")
    _eventually(lambda: _video(page, "remote")["frames"] > frames_before, what="the session going on")

    # Stop: the pipeline is terminated, then the peer connection closes (its received track ends).
    page.execute_script("window.__webcamTracks = [...document.getElementById('webcam-remote').srcObject.getTracks(),"
                        " ...document.getElementById('webcam-local').srcObject.getTracks()];")
    page.find_element(By.ID, "webcam-stop").click()
    result = page.find_element(By.ID, "webcam-result")
    _eventually(lambda: result.text == f"stopped {webcam_id}", what="the stop's answer")
    assert webcam_id not in manager.list_pipelines().pipelines
    assert _manager_state(manager, webcam_id) == "TERMINATED"
    assert page.find_element(By.ID, "webcam-state").text == "TERMINATED"
    assert page.find_element(By.ID, "webcam-peer").text == "closed"
    assert page.execute_script("return window.__webcamTracks.map((track) => track.readyState);") == ["ended", "ended"]
    assert not _video(page, "remote")["attached"] and not _video(page, "local")["attached"]
    assert page.find_element(By.ID, "webcam-start").is_enabled()
    _show_view(page, "pipelines")
    _eventually(lambda: _card(page, webcam_id) is None, what="the webcam's card gone")


def test_a_webcam_start_that_fails_shows_why(page: WebDriver, api_url: str, manager: ManagerClient) -> None:
    # A stored workflow with an image output, chosen in the page; then replaced by one without it.
    line = [[0, 240], [640, 240]]
    url = f"{api_url}/workflows/dashboard/webcam-count"
    assert httpx.put(url, json=wf.counting(line), timeout=30).status_code == 200
    _show_view(page, "webcam")
    page.find_element(By.ID, "webcam-reload").click()
    workflow = Select(_eventually(lambda: page.find_element(By.ID, "webcam-workflow"), what="the workflow list"))
    _eventually(lambda: any(option.text == "dashboard/webcam-count" for option in workflow.options),
                what="the stored workflow listed")
    workflow.select_by_visible_text("dashboard/webcam-count")
    stream_output = Select(page.find_element(By.ID, "webcam-stream-output"))
    _eventually(lambda: "annotated" in [option.text for option in stream_output.options],
                what="the stored workflow's outputs listed")
    assert not page.find_element(By.ID, "webcam-model").is_displayed()  # the model comes with the workflow
    stream_output.select_by_visible_text("annotated")
    Select(page.find_element(By.ID, "webcam-data-output")).select_by_visible_text("count_in")
    assert httpx.put(url, json=wf.counting(line, image_output=False), timeout=30).status_code == 200

    before = manager.list_pipelines().pipelines
    answer = _start_webcam(page)
    assert answer.startswith("not started: 400: ") and "'annotated'" in answer, answer
    assert manager.list_pipelines().pipelines == before  # nothing left behind
    assert not _video(page, "local")["attached"]  # the camera was let go
    assert page.find_element(By.ID, "webcam-start").is_enabled()
    assert page.find_element(By.ID, "webcam-stop").is_enabled() is False
