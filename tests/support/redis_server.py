"""The tests' real redis-server: the same embedded server `make run` uses."""

import redis

from tools.embedded_redis import RedisServer, free_port, running_redis

__all__ = ["RedisServer", "commands_run", "free_port", "running_redis"]


def commands_run(client: redis.Redis, command: str) -> int:
    """How many times Redis has run ``command`` (``INFO commandstats``; a script's own calls count too)."""
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0
