"""What the notification sinks (webhook, e-mail, Slack, SMS) share: disable switch, cooldown, and delivery
inline or in the background, with the reference's outcome messages; their credentials registered as secrets.

The order is the reference's: ``disable_sink`` first, then the cooldown (wall clock, ``env.clock``),
then the delivery. A delivery that fails is ``error_status: true`` with a redacted message (inline) or
a redacted log line (background). The cooldown starts when a delivery is attempted inline or accepted
by the background runner; one the runner refuses (too many pending) starts none, so the next frame
may try again.
"""

import logging
import socket
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from services.core.workflows.catalogue.sinks import is_missing
from services.core.workflows.plan import PlanStep
from services.infra.destinations import resolve_checked
from services.worker.workflows.blocks.base import BlockEnvironment, SinkSettings
from services.worker.workflows.blocks.sinks import credentials, inputs

log = logging.getLogger(__name__)

DISABLED = "Sink was disabled by parameter `disable_sink`"
THROTTLED = "Sink cooldown applies"
IN_BACKGROUND = "Notification sent in the background task"
SENT = "Notification sent successfully"
QUEUE_FULL = ("Notification not sent: too many deliveries of this pipeline are still pending "
              "(the endpoint is slow or unreachable)")

Delivery = Callable[[], None]  # sends once; raises on any failure


def outcome(error: bool, throttled: bool, message: str) -> dict[str, Any]:
    return {"error_status": error, "throttling_status": throttled, "message": message}


class NotificationSink:
    """Base of the notification blocks: ``gate`` then ``deliver`` on each frame."""

    what = "notification"  # "webhook notification", "e-mail": for messages and logs
    secret_fields: tuple[str, ...] = ()  # the step's fields that hold credentials (registered as secrets)

    def __init__(self, step: PlanStep | None, env: BlockEnvironment) -> None:
        self._env = env
        self._last_sent: float | None = None
        if step is not None:
            self.register_secrets(*(step.params.get(name) for name in self.secret_fields))

    def register_secrets(self, *values: Any) -> None:
        """Registers credentials given as strings: a step's literals, or a run's resolved values (a ``$steps``
        selector the block was built with is not one yet)."""
        credentials.register(self._env, [value for value in values
                                         if isinstance(value, str) and not value.startswith("$steps.")])

    def gate(self, disable_sink: Any, cooldown_seconds: Any) -> dict[str, Any] | None:
        """The outcome when this frame sends nothing (disabled, cooling down), else None."""
        if inputs.as_bool(disable_sink, "disable_sink"):
            return outcome(False, False, DISABLED)
        cooldown = inputs.as_int(cooldown_seconds, "cooldown_seconds", 0)
        if self._last_sent is not None and self._env.clock() - self._last_sent < cooldown:
            log.info("%s cooldown applies", self.what)
            return outcome(False, True, THROTTLED)
        return None

    def gate_custom(self, field: str, provider: Any, custom: str, needed: Mapping[str, Any], disable_sink: Any,
                    cooldown_seconds: Any) -> dict[str, Any] | None:
        """A v2 block's ``gate``: its provider ``field`` must be ``custom`` (the compiler refuses the managed one),
        the credentials among ``needed`` (the fields that provider needs, name -> value) are registered, then
        ``gate``, then :func:`missing_fields`."""
        if provider != custom:
            raise ValueError(f"{field} must be {custom!r} here, got {provider!r}")
        self.register_secrets(*(needed[name] for name in self.secret_fields))
        return self.gate(disable_sink, cooldown_seconds) or missing_fields(custom, needed)

    def deliver(self, delivery: Delivery, fire_and_forget: Any) -> dict[str, Any]:
        now = self._env.clock()
        if inputs.as_bool(fire_and_forget, "fire_and_forget"):
            if not self._env.background.submit(partial(self._attempt_quietly, delivery)):
                log.warning("%s dropped: too many pending deliveries", self.what)
                return outcome(True, False, QUEUE_FULL)
            self._last_sent = now
            return outcome(False, False, IN_BACKGROUND)
        self._last_sent = now
        failure = self._attempt(delivery)
        return outcome(failure is not None, False, failure or SENT)

    def _attempt_quietly(self, delivery: Delivery) -> None:
        self._attempt(delivery)  # in the background: the failure is only logged

    def _attempt(self, delivery: Delivery) -> str | None:
        """Runs ``delivery``; the redacted failure message, or None when it went through."""
        try:
            delivery()
        except Exception as error:
            details = f"Failed to send {self.what}. Internal error details: {describe(error)}"
            message = credentials.redact(self._env, details)
            log.warning("%s", message)
            return message
        return None


def missing_fields(provider: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reference's outcome when a field the custom ``provider`` needs (``values``: name -> value) is empty:
    fed by a step's output, it could not be checked at INIT. Nothing is sent and no cooldown starts."""
    if not any(is_missing(value) for value in values.values()):
        return None
    *first, last = values
    return outcome(True, False, f"{provider} requires {', '.join(first)}, and {last}")


def describe(error: BaseException) -> str:
    text = str(error) or "no details"
    return f"{type(error).__name__}: {text}"


def with_operations(values: Mapping[str, Any], operations: Mapping[str, list[dict[str, Any]]],
                    names: set[str] | None = None) -> dict[str, Any]:
    """A copy of ``values`` with each named value run through its operations chain.

    ``names``: only these values (the e-mail's message uses some of its parameters).
    """
    result = dict(values)
    for name, chain in operations.items():
        if not chain or name not in result or (names is not None and name not in names):
            continue
        from services.worker.workflows.operations import apply_operations  # numpy-heavy: only when used

        result[name] = apply_operations(result[name], chain, global_parameters={})
    return result


def check_host(host: str | None, allowed_hosts: tuple[str, ...]) -> None:
    """Raises when ``allowed_hosts`` is set and does not name ``host`` (SinkSettings.allowed_hosts)."""
    if allowed_hosts and (host or "").lower() not in {allowed.lower() for allowed in allowed_hosts}:
        raise ValueError(f"host {host!r} is not among the hosts sinks may reach (allowed: {', '.join(allowed_hosts)})")


def check_destination(host: str, port: int, sinks: SinkSettings) -> None:
    """Raises (a ValueError: the step fails) unless ``host`` is an allowed name and every address it resolves
    to now lies in ``sinks.allowed_networks``. The connection checks again (it resolves the name anew)."""
    check_host(host, sinks.allowed_hosts)
    resolve_checked(host, port, sinks.allowed_networks, socket.SOCK_STREAM)
