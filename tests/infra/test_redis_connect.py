"""The one place that turns a Redis URL setting into clients and Celery options (services.infra.redis_connect)."""

import asyncio
import ssl

import pytest
import redis

from services.core.tasks import celery_config
from services.infra.redis_connect import (
    BlockingSentinelConnectionPool,
    RedisUrlError,
    async_client,
    bounded_async_client,
    celery_connection,
    parse_redis_url,
    sync_client,
    with_celery_connection,
)

SENTINEL_URL = ("redis+sentinel://app:m4ster-pw@s1:26379,s2,[::1]:26380/mymaster/3"
                "?sentinel_password=s3ntinel-pw&sentinel_username=watcher")


def test_plain_urls_are_read_unchanged() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://:pw@cache:6380/2", "unix:///run/redis.sock?db=1"):
        target = parse_redis_url(url, "MANAGER_REDIS_URL")
        assert not target.is_sentinel and target.url == url


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_credentials() -> None:
    target = parse_redis_url(SENTINEL_URL, "WORKER_REDIS_URL")
    assert target.is_sentinel
    assert target.sentinels == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert (target.master_name, target.db) == ("mymaster", 3)
    assert (target.username, target.password) == ("app", "m4ster-pw")
    assert (target.sentinel_username, target.sentinel_password) == ("watcher", "s3ntinel-pw")
    assert not target.ssl and not target.sentinel_ssl
    assert parse_redis_url("redis+sentinel://s1/m", "X").db == 0


def test_tls_options() -> None:
    target = parse_redis_url("rediss+sentinel://s1/m?ssl_ca_certs=/ca.pem&ssl_cert_reqs=optional", "X")
    assert target.ssl and target.sentinel_ssl and target.ssl_ca_certs == "/ca.pem"
    assert target.master_kwargs()["ssl_cert_reqs"] == ssl.CERT_OPTIONAL
    mixed = parse_redis_url("redis+sentinel://s1/m?ssl=true&sentinel_ssl=false", "X")
    assert mixed.ssl and not mixed.sentinel_ssl
    assert "ssl" not in mixed.sentinel_kwargs({})


def test_the_redacted_form_has_no_secret_and_repr_neither() -> None:
    target = parse_redis_url(SENTINEL_URL, "X")
    for text in (target.redacted(), str(target), repr(target)):
        assert "m4ster-pw" not in text and "s3ntinel-pw" not in text and "watcher" not in text, text
    assert target.redacted() == ("redis+sentinel://***@s1:26379,s2:26379,[::1]:26380/mymaster/3"
                                 "?sentinel_username=***&sentinel_password=***")
    assert parse_redis_url("redis://:pw@h:6379/0", "X").redacted() == "redis://***:***@h:6379/0"


@pytest.mark.parametrize(("url", "why"), [
    ("redis+sentinel://s1:26379/", "no master name"),
    ("redis+sentinel://s1:99999/m", "not a port number"),
    ("redis+sentinel://s1:x/m", "not a port number"),
    ("redis+sentinel://s1,,s2/m", "empty sentinel address"),
    ("redis+sentinel://s1/m/zero", "is not a number"),
    ("redis+sentinel://s1/m/0/extra", "too many path segments"),
    ("redis+sentinel://:pw@s1/m?pasword=x", "unknown option 'pasword'"),
    ("redis+sentinel://s1/m?ssl=maybe", "is not a boolean"),
    ("redis+sentinel://s1/m?ssl_cert_reqs=always", "ssl_cert_reqs"),
    ("http://:pw@h/0", "unsupported scheme 'http'"),
    ("redis://:pw@h:port/0", "invalid Redis URL"),
])
def test_a_bad_url_is_refused_naming_the_setting_and_never_the_password(url: str, why: str) -> None:
    with pytest.raises(RedisUrlError, match=why) as caught:
        parse_redis_url(url, "MANAGER_REDIS_URL")
    assert str(caught.value).startswith("MANAGER_REDIS_URL: ")
    assert ":pw@" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_celery_options_for_a_plain_url_keep_the_transport_options() -> None:
    config = with_celery_connection(celery_config("", visibility_timeout=7), "redis://h:6379/1")
    assert config["broker_url"] == "redis://h:6379/1"
    assert config["broker_transport_options"] == {"visibility_timeout": 7}
    assert config["result_backend"] is None and config["task_acks_late"] is False  # the rest unchanged


def test_celery_options_for_sentinel_use_kombus_sentinel_transport() -> None:
    base = celery_config("", visibility_timeout=7)
    base["broker_transport_options"]["socket_timeout"] = 5.0
    config = with_celery_connection(base, SENTINEL_URL)
    assert config["broker_url"] == ("sentinel://app:m4ster-pw@s1:26379/3;sentinel://app:m4ster-pw@s2:26379/3;"
                                    "sentinel://app:m4ster-pw@[::1]:26380/3")
    options = config["broker_transport_options"]
    assert options["master_name"] == "mymaster" and options["visibility_timeout"] == 7
    assert options["sentinel_kwargs"] == {"socket_timeout": 5.0, "username": "watcher", "password": "s3ntinel-pw"}
    assert config["result_backend_transport_options"] == options
    assert "broker_use_ssl" not in config
    tls = celery_connection("rediss+sentinel://:p@s1/m?ssl_ca_certs=/ca.pem")
    assert tls["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/ca.pem"}
    assert tls["broker_transport_options"]["sentinel_kwargs"]["ssl"] is True


def test_clients_of_a_sentinel_url_ask_the_sentinels_for_the_master() -> None:
    sync = sync_client(SENTINEL_URL, socket_timeout=1.5)
    try:
        pool = sync.connection_pool
        assert type(pool).__name__ == "SentinelConnectionPool" and pool.service_name == "mymaster"
        assert pool.connection_kwargs["db"] == 3 and pool.connection_kwargs["password"] == "m4ster-pw"
        sentinels = sync.sentinel_manager.sentinels  # type: ignore[attr-defined]
        kwargs = sentinels[0].connection_pool.connection_kwargs
        assert kwargs["password"] == "s3ntinel-pw" and kwargs["socket_timeout"] == 1.5
        assert "m4ster-pw" not in repr(sync)
    finally:
        sync.close()

    async def build() -> None:
        bounded = bounded_async_client(SENTINEL_URL, max_connections=3, timeout=4.0, socket_timeout=1.0)
        assert isinstance(bounded.connection_pool, BlockingSentinelConnectionPool)
        assert bounded.connection_pool.max_connections == 3 and bounded.connection_pool.timeout == 4.0
        await bounded.aclose()
        plain = async_client("redis://127.0.0.1:1/0")
        assert isinstance(plain, redis.asyncio.Redis)
        await plain.aclose()

    asyncio.run(build())
