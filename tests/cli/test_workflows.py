"""``vsim workflow put|list|get|delete`` against a real manager (in-process, real Redis, no worker needed):
output, ``--json``, stdin, and the exit codes of the other commands (1 refused, 2 usage, 3 unreachable)."""

import json
from pathlib import Path

import pytest

from tests.cli.support import python_m_vsim, run, vsim
from tests.manager.conftest import RunningManager, fake_worker, manager, start_manager
from tests.manager.test_workflows import detection
from tests.support.redis_server import free_port

__all__ = ["fake_worker", "manager", "start_manager"]  # tests/manager's fixtures, used here too


@pytest.fixture
def definition(tmp_path: Path) -> Path:
    path = tmp_path / "people.json"
    path.write_text(json.dumps(detection(0.4)))
    return path


def test_put_list_get_delete(manager: RunningManager, definition: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = manager.port
    created = vsim("--port", port, "workflow", "put", "acme", "people", definition)
    replaced = vsim("--port", port, "workflow", "put", "acme", "people", "-", stdin=json.dumps(detection(0.6)),
                    monkeypatch=monkeypatch)
    other = vsim("--port", port, "workflow", "put", "zeta", "cars", definition, "--json")
    listed = vsim("--port", port, "workflow", "list")
    of_acme = vsim("--port", port, "workflow", "list", "acme", "--json")
    got = vsim("--port", port, "workflow", "get", "acme", "people")
    deleted = vsim("--port", port, "workflow", "delete", "acme", "people")

    assert (created.code, created.lines) == (0, ["created acme/people"])
    assert (replaced.code, replaced.lines) == (0, ["replaced acme/people"])
    assert json.loads(other.out)["created"] is True
    assert [line.split()[0] for line in listed.lines] == ["acme/people", "zeta/cars"]
    assert [w["workflow_id"] for w in json.loads(of_acme.out)["workflows"]] == ["people"]
    assert got.code == 0 and json.loads(got.out) == detection(0.6)  # the definition alone: `get > file` round-trips
    assert (deleted.code, deleted.lines) == (0, ["deleted acme/people"])
    assert vsim("--port", port, "workflow", "list", "acme").lines == []


def test_refusals_exit_1(manager: RunningManager, tmp_path: Path) -> None:
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({**detection(), "steps": [{"type": "acme/nope@v1", "name": "x"}]}))

    missing = vsim("--port", manager.port, "workflow", "get", "acme", "ghost")
    refused = vsim("--port", manager.port, "workflow", "put", "acme", "bad", invalid)
    bad_name = vsim("--port", manager.port, "workflow", "delete", "..", "x")

    assert (missing.code, missing.out) == (1, "")
    assert missing.err.strip() == "error: not_found: workflow 'acme/ghost' not found"
    assert refused.code == 1 and "error: invalid_payload:" in refused.err
    assert "specification.steps[0].type" in refused.err
    assert bad_name.code == 1 and "is not a valid name" in bad_name.err


def test_usage_errors_exit_2(manager: RunningManager, tmp_path: Path) -> None:
    not_json = tmp_path / "not.json"
    not_json.write_text("{")
    array = tmp_path / "array.json"
    array.write_text("[]")

    unreadable = vsim("--port", manager.port, "workflow", "put", "acme", "x", tmp_path / "absent.json")
    broken = vsim("--port", manager.port, "workflow", "put", "acme", "x", not_json)
    not_an_object = vsim("--port", manager.port, "workflow", "put", "acme", "x", array)

    assert unreadable.code == 2 and "error: cannot read workflow" in unreadable.err
    assert broken.code == 2 and "is not valid JSON" in broken.err
    assert not_an_object.code == 2 and "must be a JSON object, got list" in not_an_object.err
    with pytest.raises(SystemExit) as usage:
        vsim("workflow", "get", "acme")  # the id is missing: argparse's own exit
    assert usage.value.code == 2


def test_as_a_real_process(manager: RunningManager, definition: Path) -> None:
    put = run(python_m_vsim("--port", manager.port, "workflow", "put", "acme", "people", definition))
    got = run(python_m_vsim("--port", manager.port, "workflow", "get", "acme", "people"))
    unreachable = run(python_m_vsim("--port", free_port(), "workflow", "list"))
    helped = run(python_m_vsim("workflow", "--help"))

    assert (put.returncode, put.stdout) == (0, "created acme/people\n")
    assert got.returncode == 0 and json.loads(got.stdout) == detection(0.4)
    assert unreachable.returncode == 3 and unreachable.stderr.startswith("error: stream manager at")
    assert helped.returncode == 0 and "vsim workflow put acme people people.json" in helped.stdout
