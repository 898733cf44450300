"""The protections in a real headless browser (the dashboard tests' chromium): the dashboard asks for the
API's token and then works with it; a page of another origin cannot drive the API with a POST."""

import http.server
import logging
import threading
from collections.abc import Iterator

import pytest
import redis
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.api.conftest import ApiFactory
from tests.dashboard.test_browser import _eventually, browser, camera_video
from tests.manager.conftest import RunningManager
from tests.manager.fakes import register_worker
from tests.manager.test_server import INIT_PAYLOAD

__all__ = ["browser", "camera_video"]  # fixtures of the dashboard's browser tests, shared

TOKEN = "browser-token-0123456789"


def test_the_dashboard_asks_for_the_token_once_and_sends_it(browser: WebDriver, manager: RunningManager,
                                                            serve_api: ApiFactory, redis_client: redis.Redis) -> None:
    api = serve_api(manager_port=manager.port, auth_token=TOKEN)
    register_worker(redis_client)
    started = api.http.post("/inference_pipelines/initialise", json=INIT_PAYLOAD,
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert started.status_code == 200, started.text
    pipeline_id = started.json()["context"]["pipeline_id"]

    browser.get(f"{api.url}/dashboard")
    form = _eventually(lambda: (lambda f: f if f.is_displayed() else None)(browser.find_element(By.ID, "login-form")),
                       timeout=20, what="the token form shown")
    assert "needs its token" in browser.find_element(By.ID, "login-note").text
    form.find_element(By.NAME, "token").send_keys(TOKEN)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    _eventually(lambda: browser.find_elements(By.CSS_SELECTOR, f'article.pipeline[data-pipeline-id="{pipeline_id}"]'),
                timeout=20, what="the pipeline listed")
    assert not browser.find_element(By.ID, "login-form").is_displayed()
    assert browser.execute_script("return sessionStorage.getItem('vsim-api-token')") == TOKEN
    browser.execute_script("sessionStorage.clear()")


class _AttackerPage(http.server.BaseHTTPRequestHandler):
    target = ""
    timeout = 5  # seconds a connection may stay silent

    def do_GET(self) -> None:
        page = (f"<!doctype html><script>fetch({self.target!r}, {{method: 'POST', mode: 'no-cors'}})"
                ".finally(() => { document.title = 'sent'; });</script>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def attacker_site() -> Iterator[tuple[http.server.ThreadingHTTPServer, type[_AttackerPage]]]:
    handler = type("Handler", (_AttackerPage,), {})
    # Threads: chromium opens speculative connections it sends nothing on, and a one-thread server
    # waiting on one of them held the teardown's shutdown() for a minute.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def test_a_page_of_another_origin_cannot_pause_a_pipeline(
    browser: WebDriver, manager: RunningManager, serve_api: ApiFactory,
    attacker_site: tuple[http.server.ThreadingHTTPServer, type[_AttackerPage]], caplog: pytest.LogCaptureFixture
) -> None:
    api = serve_api(manager_port=manager.port)  # no token: the loopback API the attack aims at
    server, handler = attacker_site
    handler.target = f"{api.url}/inference_pipelines/00000000-0000-0000-0000-000000000000/pause"
    with caplog.at_level(logging.WARNING, logger="services.api.security"):
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        _eventually(lambda: browser.title == "sent", timeout=20, what="the cross-site POST sent")
    assert "POST /inference_pipelines/00000000-0000-0000-0000-000000000000/pause -> 403 CrossOriginRequestRefused" \
        in caplog.text
