"""The fuzz tests reuse tests/manager's in-process manager (real sockets, real Redis, fake worker)."""

from tests.manager.conftest import fake_worker, manager, start_manager

__all__ = ["fake_worker", "manager", "start_manager"]
