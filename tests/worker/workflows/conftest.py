"""Fixtures shared by the sink tests: a fake wall clock and a block environment on it."""

import pytest

from services.worker.workflows.blocks.base import BlockEnvironment
from tests.worker.workflows.sink_support import FakeClock, make_env


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def env(clock: FakeClock) -> BlockEnvironment:
    return make_env(clock)
