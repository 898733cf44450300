"""How every process connects to Redis: one URL setting, a plain server or a Sentinel-managed master.

Theory of operation
-------------------
Each service has one Redis URL setting (``MANAGER_REDIS_URL``, ``WORKER_REDIS_URL``, ``API_REDIS_URL``,
``FLOWER_REDIS_URL``, the CLI's ``--redis-url``). :func:`parse_redis_url` reads it once into a
:class:`RedisTarget`; everything that connects builds its client from that target here, so a plain
server and a Sentinel deployment differ in the URL only.

- ``redis://``, ``rediss://`` and ``unix://`` URLs mean what they always meant: redis-py's
  ``from_url`` reads them, unchanged.
- ``redis+sentinel://[[user]:password@]host1[:port],host2[:port],.../<master_name>[/<db>][?options]``
  (``rediss+sentinel://``: TLS to the master and the sentinels) names the sentinels (port 26379 by
  default) and the master group they watch. The userinfo is the master's (and its replicas')
  credentials. Options: ``sentinel_username`` / ``sentinel_password`` (the sentinels' own
  ``requirepass``, often different), ``ssl`` (TLS to the master), ``sentinel_ssl`` (TLS to the
  sentinels; default: as ``ssl``), ``ssl_ca_certs`` (a CA file), ``ssl_cert_reqs``
  (``required``/``optional``/``none``). Anything else is refused, by name.

A Sentinel client asks the sentinels for the current master when it (re)connects (redis-py's
``master_for``): after a failover the next connection goes to the promoted replica, and a
connection still open to a demoted master fails with ``READONLY``, which redis-py turns into a
connection error and a reconnect. Nothing else in the project knows which server is the master.

Pools. The manager's bounded pools (a request waits for a free connection rather than failing,
``services.manager.service``) keep their bounds with Sentinel: :class:`BlockingSentinelConnectionPool`
is redis-py's ``SentinelConnectionPool`` (which connection goes to which server) on top of its
``BlockingConnectionPool`` (how many, and the wait for a free one). Their responsibilities do not
overlap: the Sentinel pool only overrides how a connection finds its address and which connections
it still owns after the master moved; the blocking pool only how one is handed out.

Celery and Flower. kombu has its own Sentinel transport: :func:`celery_connection` turns the target
into ``sentinel://h1:26379;sentinel://h2:26379`` plus ``broker_transport_options`` with the
``master_name`` and the sentinels' own credentials (``sentinel_kwargs``), and ``broker_use_ssl``
for TLS; the same for the result backend options (the project keeps none, but a deployment that
adds one gets the right options). Flower reads the broker options of the same app.

Secrets. :meth:`RedisTarget.redacted` is the only form that may be logged or shown: user and
passwords become ``***``, ``sentinel_password`` too. A malformed URL raises :class:`RedisUrlError`
naming the setting and showing the redacted URL, never the password, at start-up.
"""

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.asyncio import BlockingConnectionPool

from services.core.redaction import REDACTED, redact_reference

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
PLAIN_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_SENTINEL_PORT = 26379
_BOOLEAN = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
_CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
_OPTIONS = ("sentinel_username", "sentinel_password", "ssl", "sentinel_ssl", "ssl_ca_certs", "ssl_cert_reqs")


class RedisUrlError(ValueError):
    """A Redis URL setting that cannot be used; the message names the setting and never holds a secret."""


@dataclass(frozen=True)
class RedisTarget:
    """One Redis URL, parsed. ``url`` is the setting as given (it may hold passwords: never log it)."""

    url: str = field(repr=False)
    setting: str
    sentinels: tuple[tuple[str, int], ...] = ()  # empty: a plain URL
    master_name: str = ""
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    ssl: bool = False
    sentinel_ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_cert_reqs: str = "required"

    @property
    def is_sentinel(self) -> bool:
        return bool(self.sentinels)

    def redacted(self) -> str:
        """The URL with every credential replaced by ``***``: what logs, errors and banners show."""
        if not self.is_sentinel:
            return str(redact_reference(self.url))
        scheme = urlsplit(self.url).scheme.lower()
        userinfo = f"{REDACTED}@" if self.username is not None or self.password is not None else ""
        hosts = ",".join(f"{_bracketed(host)}:{port}" for host, port in self.sentinels)
        options = []
        if self.sentinel_username is not None:
            options.append(f"sentinel_username={REDACTED}")
        if self.sentinel_password is not None:
            options.append(f"sentinel_password={REDACTED}")
        if self.ssl and scheme == "redis+sentinel":
            options.append("ssl=true")
        if self.sentinel_ssl != self.ssl:
            options.append(f"sentinel_ssl={str(self.sentinel_ssl).lower()}")
        if self.ssl_ca_certs:
            options.append(f"ssl_ca_certs={self.ssl_ca_certs}")
        if self.ssl_cert_reqs != "required":
            options.append(f"ssl_cert_reqs={self.ssl_cert_reqs}")
        query = f"?{'&'.join(options)}" if options else ""
        return f"{scheme}://{userinfo}{hosts}/{self.master_name}/{self.db}{query}"

    def __str__(self) -> str:
        return self.redacted()

    # ----------------------------------------------------------------- connection keyword arguments

    def _tls(self) -> dict[str, Any]:
        tls: dict[str, Any] = {"ssl_cert_reqs": _CERT_REQS[self.ssl_cert_reqs]}
        if self.ssl_ca_certs:
            tls["ssl_ca_certs"] = self.ssl_ca_certs
        return tls

    def master_kwargs(self) -> dict[str, Any]:
        """What a connection to the master needs besides its address (credentials, db, TLS)."""
        kwargs: dict[str, Any] = {"db": self.db, "username": self.username, "password": self.password}
        if self.ssl:
            kwargs.update(ssl=True, **self._tls())
        return kwargs

    def sentinel_kwargs(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments of the connections to the sentinels: their own credentials and TLS, and the
        socket timeouts of ``extra`` (the caller's bounds apply to the sentinels too)."""
        kwargs: dict[str, Any] = {key: value for key, value in extra.items() if key.startswith("socket_")}
        kwargs.update(username=self.sentinel_username, password=self.sentinel_password)
        if self.sentinel_ssl:
            kwargs.update(ssl=True, **self._tls())
        return kwargs


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_redis_url(url: str, setting: str) -> RedisTarget:
    """Reads one Redis URL setting; raises :class:`RedisUrlError` naming ``setting`` when it is unusable."""
    text = url.strip()
    try:
        scheme = urlsplit(text).scheme.lower()
    except ValueError as exc:
        raise RedisUrlError(f"{setting}: not a URL: {redact_reference(text)} ({exc})") from None
    if scheme in PLAIN_SCHEMES:
        try:
            redis.connection.parse_url(text)  # type: ignore[no-untyped-call]
        except (ValueError, TypeError) as exc:
            raise RedisUrlError(f"{setting}: invalid Redis URL {redact_reference(text)}: "
                                f"{redact_reference(str(exc))!s}") from None
        return RedisTarget(url=text, setting=setting)
    if scheme in SENTINEL_SCHEMES:
        return _parse_sentinel(text, setting, scheme)
    raise RedisUrlError(f"{setting}: unsupported scheme {scheme or '(none)'!r} in {redact_reference(text)}: "
                        f"use redis://, rediss://, unix:// or redis+sentinel://host:26379,.../<master_name>")


def _parse_sentinel(url: str, setting: str, scheme: str) -> RedisTarget:
    shown = redact_reference(url)

    def problem(message: str) -> RedisUrlError:
        return RedisUrlError(f"{setting}: {message} in {shown} (expected redis+sentinel://[[user]:password@]"
                             f"host:26379[,host:port...]/<master_name>[/<db>][?sentinel_password=...&ssl=true])")

    parts = urlsplit(url)
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, separator, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if separator else None
        if not separator and username is not None:  # redis://token@host: a password alone, as redis-py reads it
            username, password = None, username
    sentinels = []
    for item in netloc.split(","):
        host, port = _host_port(item.strip(), problem)
        sentinels.append((host, port))
    path = [segment for segment in parts.path.split("/") if segment]
    if not path:
        raise problem("no master name (the path's first segment)")
    if len(path) > 2:
        raise problem("too many path segments")
    master_name = unquote(path[0])
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise problem(f"database {path[1]!r} is not a number")
        db = int(path[1])
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key not in _OPTIONS:
            raise problem(f"unknown option {key!r} (known: {', '.join(_OPTIONS)})")
        options[key] = value
    tls = scheme == "rediss+sentinel"
    use_ssl = _flag(options.get("ssl"), tls, "ssl", problem)
    sentinel_ssl = _flag(options.get("sentinel_ssl"), use_ssl, "sentinel_ssl", problem)
    cert_reqs = options.get("ssl_cert_reqs", "required").lower()
    if cert_reqs not in _CERT_REQS:
        raise problem(f"ssl_cert_reqs {cert_reqs!r} is not one of {', '.join(_CERT_REQS)}")
    return RedisTarget(
        url=url, setting=setting, sentinels=tuple(sentinels), master_name=master_name, db=db,
        username=username, password=password,
        sentinel_username=options.get("sentinel_username") or None,
        sentinel_password=options.get("sentinel_password") or None,
        ssl=use_ssl, sentinel_ssl=sentinel_ssl, ssl_ca_certs=options.get("ssl_ca_certs") or None,
        ssl_cert_reqs=cert_reqs,
    )


def _host_port(item: str, problem: Any) -> tuple[str, int]:
    if not item:
        raise problem("an empty sentinel address")
    if item.startswith("["):  # [::1]:26379
        host, _, rest = item[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise problem(f"sentinel address {item!r} is malformed")
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise problem(f"sentinel address {item!r} has no host")
    if not port_text:
        return host, DEFAULT_SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise problem(f"sentinel port {port_text!r} is not a port number")
    return host, int(port_text)


def _flag(value: str | None, default: bool, name: str, problem: Any) -> bool:
    if value is None:
        return default
    if value.lower() not in _BOOLEAN:
        raise problem(f"option {name}={value!r} is not a boolean")
    return _BOOLEAN[value.lower()]


def as_target(url: "str | RedisTarget", setting: str) -> RedisTarget:
    return url if isinstance(url, RedisTarget) else parse_redis_url(url, setting)


# --------------------------------------------------------------------------------------------- clients


class _SyncSentinelRedis(redis.Redis):
    """A master client that also closes its connections to the sentinels."""

    sentinel_manager: redis.sentinel.Sentinel | None = None

    def close(self) -> None:
        super().close()
        if self.sentinel_manager is not None:
            self.sentinel_manager.close()


class _AsyncSentinelRedis(redis.asyncio.Redis):
    """A master client (asyncio) that also closes its connections to the sentinels."""

    sentinel_manager: redis.asyncio.sentinel.Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            await self.sentinel_manager.aclose()


class BlockingSentinelConnectionPool(redis.asyncio.sentinel.SentinelConnectionPool, BlockingConnectionPool):
    """A bounded asyncio pool whose connections go to the master the sentinels name (see the module
    docstring): ``max_connections`` at most, a caller waits up to ``timeout`` for a free one."""


def sync_client(url: "str | RedisTarget", setting: str = "redis_url", **kwargs: Any) -> redis.Redis:
    """A synchronous client; ``kwargs`` are redis-py's (timeouts, retry, health_check_interval)."""
    target = as_target(url, setting)
    if not target.is_sentinel:
        return redis.Redis.from_url(target.url, **kwargs)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=target.sentinel_kwargs(kwargs))
    client: _SyncSentinelRedis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.master_name, redis_class=_SyncSentinelRedis, **target.master_kwargs(), **kwargs)
    client.sentinel_manager = sentinel
    return client


def async_client(url: "str | RedisTarget", setting: str = "redis_url", **kwargs: Any) -> redis.asyncio.Redis:
    """An asyncio client (redis-py's default, unbounded pool)."""
    target = as_target(url, setting)
    if not target.is_sentinel:
        return redis.asyncio.Redis.from_url(target.url, **kwargs)
    sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=target.sentinel_kwargs(kwargs))
    client: _AsyncSentinelRedis = sentinel.master_for(target.master_name, redis_class=_AsyncSentinelRedis,
                                                      **target.master_kwargs(), **kwargs)
    client.sentinel_manager = sentinel
    return client


def bounded_async_client(url: "str | RedisTarget", max_connections: int, timeout: float | None,
                         setting: str = "redis_url", **kwargs: Any) -> redis.asyncio.Redis:
    """An asyncio client on a blocking pool: at most ``max_connections``, a caller waits up to ``timeout``
    seconds for a free one (then ``ConnectionError("No connection available.")``)."""
    target = as_target(url, setting)
    if not target.is_sentinel:
        pool = BlockingConnectionPool.from_url(target.url, max_connections=max_connections, timeout=timeout,
                                               **kwargs)
        return redis.asyncio.Redis.from_pool(pool)
    sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=target.sentinel_kwargs(kwargs))
    client: _AsyncSentinelRedis = sentinel.master_for(target.master_name, redis_class=_AsyncSentinelRedis,
                                 connection_pool_class=BlockingSentinelConnectionPool,
                                 max_connections=max_connections, timeout=timeout,
                                 **target.master_kwargs(), **kwargs)
    client.sentinel_manager = sentinel
    return client


# --------------------------------------------------------------------------------------------- Celery


def celery_connection(url: "str | RedisTarget", setting: str = "redis_url",
                      transport_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Celery settings that point broker (and result backend options) at the target.

    ``transport_options`` (visibility timeout, socket timeouts) are merged into the broker's and the
    result backend's transport options; a Sentinel target adds ``master_name`` and ``sentinel_kwargs``.
    """
    target = as_target(url, setting)
    options = dict(transport_options or {})
    if not target.is_sentinel:
        return {"broker_url": target.url, "broker_transport_options": options,
                "result_backend_transport_options": dict(options)}
    userinfo = ""
    if target.username is not None or target.password is not None:
        userinfo = f"{_quote(target.username or '')}:{_quote(target.password or '')}@"
    broker_url = ";".join(f"sentinel://{userinfo}{_bracketed(host)}:{port}/{target.db}"
                          for host, port in target.sentinels)
    sentinel_kwargs = {key: value for key, value in target.sentinel_kwargs(options).items() if value is not None}
    options.update(master_name=target.master_name, sentinel_kwargs=sentinel_kwargs)
    config: dict[str, Any] = {"broker_url": broker_url, "broker_transport_options": options,
                              "result_backend_transport_options": dict(options)}
    if target.ssl:
        config["broker_use_ssl"] = target._tls()
    return config


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def with_celery_connection(config: Mapping[str, Any], url: "str | RedisTarget",
                           setting: str = "redis_url") -> dict[str, Any]:
    """``config`` (``services.core.tasks.celery_config``) with its broker pointed at ``url``: its own
    ``broker_transport_options`` (visibility timeout, socket timeouts) are kept and merged."""
    connection = celery_connection(url, setting, config.get("broker_transport_options"))
    return {**config, **connection}
