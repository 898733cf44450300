"""Every Lua script of the project compiles on a real redis-server.

A script is a module-level string of a ``services`` module that calls ``redis.call(``. Each one lives
beside the Python that reads its reply (its return codes and KEYS/ARGV order are documented there);
this test is the one place that knows all of them: it imports every module, collects the scripts and
loads each with SCRIPT LOAD, so a Lua syntax error fails here, named, rather than on the first
request that happens to run it. Fragments (a fence prefix, a helper function) are checked as part of
the scripts they are joined into.
"""

import importlib
import pkgutil

import pytest
import redis

import services


def _scripts() -> dict[str, str]:
    found: dict[str, str] = {}
    for module_info in pkgutil.walk_packages(services.__path__, "services."):
        if module_info.name.endswith("__main__"):  # importing those runs them
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if isinstance(value, str) and "redis.call(" in value:
                found[f"{module_info.name}.{name}"] = value
    return found


SCRIPTS = _scripts()


def test_the_scripts_are_found() -> None:
    modules = {name.rsplit(".", 1)[0] for name in SCRIPTS}
    assert {"services.manager.store", "services.worker.ownership", "services.worker.engine.sinks.redis_stream",
            "services.manager.lease", "services.manager.drain", "services.infra.registry"} <= modules
    assert len(SCRIPTS) >= 25


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_each_script_compiles(redis_client: redis.Redis, name: str) -> None:
    sha = redis_client.script_load(SCRIPTS[name])
    assert redis_client.script_exists(sha) == [True]
