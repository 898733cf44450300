"""The dashboard in a real headless browser (Debian's chromium driven through its chromedriver) against the
real stack: `python -m services.manager`, a Celery worker running the ONNX model on real video, and
`python -m services.api`, on a redis-server of their own. One browser session for the module; the tests run
in order on the pipeline the first one starts.

A missing browser or driver fails these tests (``make setup`` installs both): the page is part of the product.
Set ``DASHBOARD_SCREENSHOT=docs/dashboard.png`` to also write the screenshot there (the README shows it).
"""

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

from services.client import ManagerClient
from tests.support.redis_server import running_redis
from tests.support.stack import Stack, running_stack
from tests.support.waiting import wait_until
from tools.payloads import MODEL_ID, newer_init

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
VTEST = "data/media/vtest.avi"  # 768x576: previews are 480x360
WINDOW = (1280, 720)
DOCS_SETTLE_S = 40  # with DASHBOARD_SCREENSHOT set: seconds of samples in the pictured sparklines


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_redis() as redis_server, running_stack(redis_server.url) as running:
        running.start_manager()
        # Three slots: the pipeline of the tests, the form's failed start (its slot frees once its process is
        # recycled) and the form's pipeline.
        running.start_worker("cpu", "pipelines.cpu", concurrency=3)
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
def browser() -> Iterator[WebDriver]:
    for required in (CHROMIUM, CHROMEDRIVER):
        if not required.is_file():
            pytest.fail(f"{required} is missing: run tools/install_system_deps.sh (Debian's chromium, chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars", "--no-first-run",
                     "--disable-extensions", "--disable-background-networking", "--disable-sync"):
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
