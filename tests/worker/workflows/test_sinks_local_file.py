"""roboflow_core/local_file_sink@v1 on a real directory: file names, append-log rotation, CSV headers,
JSON lines, separate files, and the confinement under the configured root (absolute paths, '..',
symbolic links, links planted between writes, no root at all)."""

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from services.core.workflows.compiler import compile_workflow
from services.worker.workflows.blocks import REGISTRY
from services.worker.workflows.blocks.base import BlockEnvironment
from tests.worker.workflows.sink_support import FakeClock, definition, make_env

SAVED = {"error_status": False, "message": "Data saved successfully"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_767_225_600.25)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "sinks"


@pytest.fixture
def env(root: Path, clock: FakeClock) -> BlockEnvironment:
    return make_env(clock, file_root=root)


def sink(**fields: Any) -> dict[str, Any]:
    step = {"type": "roboflow_core/local_file_sink@v1", "name": "file", "content": "$steps.csv.csv_content",
            "output_mode": "append_log", "target_directory": "logs"}
    return {**step, **fields}


def build_sink(env: BlockEnvironment, **fields: Any) -> tuple[Any, dict[str, Any]]:
    """The sink fed by a csv_formatter step's selector (a step whose output is a string)."""
    workflow = definition(sink(**fields))
    workflow["steps"].insert(0, {"type": "roboflow_core/csv_formatter@v1", "name": "csv",
                                 "columns_data": {"camera": "gate"}})
    step = compile_workflow(workflow).step("file")
    return REGISTRY[step.type](step, env), dict(step.params)


def stamp(when: float) -> str:
    return datetime.fromtimestamp(when).strftime("%Y_%m_%d_%H_%M_%S_%f")


def files(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def test_append_log_rotates_after_max_entries_and_keeps_one_csv_header_per_file(
        env: BlockEnvironment, root: Path, clock: FakeClock) -> None:
    block, params = build_sink(env, max_entries_per_file=2, file_name_prefix="counts")
    first_file_time = clock.now

    for row in range(3):
        assert block.run(**{**params, "content": f"camera,count\ngate,{row}\n"}) == SAVED
        clock.now += 1.5

    first, second = files(root / "logs")
    assert first.name == f"counts_{stamp(first_file_time)}.csv"
    assert second.name == f"counts_{stamp(first_file_time + 3.0)}.csv"
    assert first.read_text() == "camera,count\ngate,0\ngate,1\n"
    assert second.read_text() == "camera,count\ngate,2\n"


def test_append_log_json_is_written_as_json_lines(env: BlockEnvironment, root: Path) -> None:
    block, params = build_sink(env, file_type="json")

    assert block.run(**{**params, "content": '{"a": 1,\n "b": [1, 2]}'}) == SAVED
    assert block.run(**{**params, "content": "[3]"}) == SAVED
    refused = block.run(**{**params, "content": "{not json"})

    assert refused == {"error_status": True, "message": "Invalid JSON content"}
    (log,) = files(root / "logs")
    assert log.suffix == ".jsonl"
    assert [json.loads(line) for line in log.read_text().splitlines()] == [{"a": 1, "b": [1, 2]}, [3]]


def test_append_log_txt_ends_each_entry_with_a_newline(env: BlockEnvironment, root: Path) -> None:
    block, params = build_sink(env, file_type="txt", file_name_prefix="notes")

    block.run(**{**params, "content": "first"})
    block.run(**{**params, "content": "second\n"})

    (log,) = files(root / "logs")
    assert log.name.startswith("notes_") and log.read_text() == "first\nsecond\n"


def test_a_csv_entry_of_only_its_header_adds_no_blank_line(env: BlockEnvironment, root: Path) -> None:
    block, params = build_sink(env)

    for content in ("a,b\n1,2\n", "a,b\n", "a,b\n3,4"):
        assert block.run(**{**params, "content": content}) == SAVED

    assert files(root / "logs")[0].read_text() == "a,b\n1,2\n3,4\n"


def test_separate_files_writes_one_file_per_content(env: BlockEnvironment, root: Path, clock: FakeClock) -> None:
    block, params = build_sink(env, file_type="json", output_mode="separate_files", target_directory="cams/gate",
                               file_name_prefix="event")

    block.run(**{**params, "content": '{"n": 1}'})
    block.run(**{**params, "content": '{"n": 2}\n'})  # same clock reading: the name gets a suffix

    first, second = files(root / "cams" / "gate")
    assert first.name == f"event_{stamp(clock.now)}.json" and first.read_text() == '{"n": 1}\n'
    assert second.name == f"event_{stamp(clock.now)}_1.json" and second.read_text() == '{"n": 2}\n'


def test_a_new_log_starts_when_the_directory_changes_and_each_block_has_its_own(env: BlockEnvironment,
                                                                               root: Path) -> None:
    block, params = build_sink(env, file_type="txt")
    other, _ = build_sink(env, file_type="txt")

    block.run(**{**params, "content": "a"})
    block.run(**{**params, "content": "b", "target_directory": "other"})
    other.run(**{**params, "content": "c"})

    assert [path.read_text() for path in files(root / "logs")] == ["a\n", "c\n"]
    assert [path.read_text() for path in files(root / "other")] == ["b\n"]


def test_max_entries_may_come_as_a_string(env: BlockEnvironment, root: Path) -> None:
    block, params = build_sink(env, file_type="txt")

    for text in "abc":
        block.run(**{**params, "content": text, "max_entries_per_file": "1"})

    assert len(files(root / "logs")) == 3


@pytest.mark.parametrize(("target", "error"), [
    ("/tmp/elsewhere", "must be relative to the file sinks' root, not an absolute path"),
    ("../escape", "must not contain '..'"),
    ("logs/../../escape", "must not contain '..'"),
])
def test_paths_leaving_the_root_are_refused(env: BlockEnvironment, root: Path, target: str, error: str) -> None:
    block, params = build_sink(env)

    with pytest.raises(ValueError, match=error):
        block.run(**{**params, "content": "a", "target_directory": target})
    assert not (root.parent / "escape").exists()


@pytest.mark.parametrize("target", ["link", "link/deeper", "inside/link"])
def test_symbolic_links_leading_out_of_the_root_are_refused(env: BlockEnvironment, root: Path, tmp_path: Path,
                                                            target: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "inside").mkdir(parents=True)
    (root / "link").symlink_to(outside)
    (root / "inside" / "link").symlink_to(outside)
    block, params = build_sink(env)

    with pytest.raises(ValueError, match="leads out of the file sinks' root through a symbolic link"):
        block.run(**{**params, "content": "a", "target_directory": target})
    assert list(outside.iterdir()) == []


def test_a_link_inside_the_root_is_followed(env: BlockEnvironment, root: Path) -> None:
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real")
    block, params = build_sink(env, file_type="txt")

    assert block.run(**{**params, "content": "a", "target_directory": "alias"}) == SAVED
    assert [path.read_text() for path in files(root / "real")] == ["a\n"]


def test_a_link_planted_in_place_of_the_log_is_not_followed(env: BlockEnvironment, root: Path,
                                                            tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    block, params = build_sink(env, file_type="txt")
    block.run(**{**params, "content": "a"})
    (log,) = files(root / "logs")
    log.unlink()
    log.symlink_to(victim)

    result = block.run(**{**params, "content": "b"})

    assert result["error_status"] is True and result["message"].startswith("Could not append content to append log")
    assert victim.read_text() == "untouched\n"
    assert block.run(**{**params, "content": "c"}) == SAVED  # the next entry starts a new file


def test_without_a_root_the_block_cannot_write(clock: FakeClock) -> None:
    block, params = build_sink(make_env(clock))

    with pytest.raises(ValueError, match=r"SinkSettings.file_root is not set"):
        block.run(**{**params, "content": "a"})


def test_a_prefix_with_a_path_is_refused(env: BlockEnvironment) -> None:
    block, params = build_sink(env, file_name_prefix="sub/name")

    with pytest.raises(ValueError, match="file_name_prefix 'sub/name' must be a non-empty file name"):
        block.run(**{**params, "content": "a"})


def test_a_directory_that_cannot_be_made_is_an_error_status(env: BlockEnvironment, root: Path) -> None:
    root.mkdir()
    (root / "blocked").write_text("a file, not a directory")
    block, params = build_sink(env, target_directory="blocked/sub")

    result = block.run(**{**params, "content": "a"})

    assert result["error_status"] is True and result["message"].startswith("Could not create the target directory")


def test_files_are_created_with_the_usual_permissions(env: BlockEnvironment, root: Path) -> None:
    block, params = build_sink(env, output_mode="separate_files")
    previous = os.umask(0o022)
    try:
        block.run(**{**params, "content": "a"})
    finally:
        os.umask(previous)

    (written,) = files(root / "logs")
    assert written.stat().st_mode & 0o777 == 0o644
