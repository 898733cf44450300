"""The dashboard's route tests reuse the API tests' served app in front of a real in-process manager whose
pipelines are tests/manager's fake tasks (the browser test runs the real stack instead)."""

from tests.api.conftest import api, serve_api
from tests.manager.conftest import fake_worker, manager, start_manager

__all__ = ["api", "fake_worker", "manager", "serve_api", "start_manager"]
