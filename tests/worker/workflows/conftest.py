"""Fixtures shared by the sink tests (a fake wall clock, a block environment on it, a Slack Web API of our own) and
the hosted-model block tests (the fake hosted APIs, closed after each test)."""

from collections.abc import Iterator

import pytest

from services.worker.workflows.blocks.base import BlockEnvironment
from tests.support.llm_providers import FakeLlmApis
from tests.worker.workflows.sink_support import FakeClock, FakeSlack, make_env


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def env(clock: FakeClock) -> BlockEnvironment:
    return make_env(clock)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack()
    yield server
    server.close()


@pytest.fixture
def apis() -> Iterator[FakeLlmApis]:
    server = FakeLlmApis()
    yield server
    server.close()
