"""Fixtures of the infra tests."""

from pathlib import Path

import pytest

from tests.support.redis_over import tls_certificate


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    return tls_certificate(tmp_path_factory.mktemp("redis-tls"))
