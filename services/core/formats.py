"""Format versions of what one release writes and another may read: records, task specs, registrations.

Theory of operation
-------------------
Three documents cross process (and so release) boundaries during a rolling upgrade: the pipeline
record (a Redis HASH, written by the manager, updated by the task), the task spec (the JSON a
manager stores at INIT and sends with every dispatch of the pipeline) and the worker registration
(the JSON a worker publishes each second). Each carries ``format_version``, ``"MAJOR.MINOR"``:

- A **minor** bump only adds optional fields, each with a default that keeps the older meaning
  (and for the spec only at its top level). A reader therefore reads every version of its major:
  an older one (a missing field takes its default) and a newer one (an unknown field is ignored).
- A **major** bump is any other change (a field renamed, removed or reinterpreted). A reader
  refuses a document of a newer major with :class:`FormatError`, whose message says what was refused
  and which versions this release reads; the caller logs it and leaves the document alone (the
  reaper skips that pipeline and goes on, a worker rejects that task with the reason, admission
  skips that worker). Older majors stay readable: a release that bumps a major keeps reading the
  previous one, so records written before an upgrade never become unreadable.
- A document without ``format_version`` was written before versions existed: it is ``1.0``.

Current versions (``1.1`` each: ``1.0`` is the same shape without ``format_version``; the
registration's ``1.1`` also adds ``draining`` and ``consuming``, see ``services.core.drain``).

Rolling upgrade order (README, "Rolling upgrades"): workers first, one at a time (drain, stop,
upgrade, start, undrain), then managers in any order. Managers hold no state of their own: every
record, spec, drain and schedule is in Redis, each request and each reaper sweep reads it afresh,
and within one major an old manager and a new one read each other's records and specs (unknown
fields ignored, missing ones defaulted). Workers go first because a task spec is validated strictly
by the worker that runs it: a worker from before format versions refuses the ``format_version`` key
a manager of this release adds, while a worker of this release accepts specs from older managers
(no version: ``1.0``) and newer minors alike.
"""

import re
from dataclasses import dataclass

_VERSION = re.compile(r"(\d{1,6})\.(\d{1,6})")


class FormatError(ValueError):
    """A document this release cannot read: a newer major, or a version that does not parse."""


@dataclass(frozen=True, order=True, slots=True)
class FormatVersion:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    @classmethod
    def parse(cls, text: object) -> "FormatVersion":
        """``"MAJOR.MINOR"``; None or "" (a document from before format versions) is :data:`LEGACY`."""
        if text is None or text == "":
            return LEGACY
        match = _VERSION.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise FormatError(f"format_version {text!r} is not MAJOR.MINOR")
        return cls(int(match[1]), int(match[2]))


LEGACY = FormatVersion(1, 0)  # what a document without format_version is
RECORD = FormatVersion(1, 1)  # the pipeline record (services.core.records)
SPEC = FormatVersion(1, 1)  # the task spec (services.core.plan.PipelineSpec.task_payload)
REGISTRATION = FormatVersion(1, 1)  # the worker registration (services.core.registration)


def readable(kind: str, written: object, current: FormatVersion) -> FormatVersion:
    """The version of a ``kind`` document that says ``written``, when this release (``current``) reads it.

    Raises :class:`FormatError` for a newer major (or an unparsable version), naming both versions.
    """
    version = FormatVersion.parse(written)
    if version.major > current.major:
        raise FormatError(f"{kind} format {version} is newer than this release reads "
                          f"({current.major}.x and older)")
    return version
