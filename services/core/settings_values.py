"""Values the services' settings share: comma-separated lists, and whether a bind address is loopback only.

One home for each rule, so the manager, the API and the worker read ``A, B,,C`` and ``[::1]`` alike.
"""

import ipaddress
from typing import Any


def comma_list(value: Any) -> Any:
    """``"a, b,,c"`` -> ``("a", "b", "c")`` (blanks dropped); anything else (a list, a tuple) as it came.

    The body of the services' ``mode="before"`` validators of list settings read from the environment.
    """
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` listens on this machine's loopback only: ``localhost`` or an address in
    127.0.0.0/8 or ::1 (brackets allowed). A host name is not resolved; "" and 0.0.0.0 are every interface."""
    name = host.strip().strip("[]").lower()
    if name in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
