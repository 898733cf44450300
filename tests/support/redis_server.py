"""The tests' real redis-server: the same embedded server `make run` uses."""

from tools.embedded_redis import RedisServer, free_port, running_redis

__all__ = ["RedisServer", "free_port", "running_redis"]
