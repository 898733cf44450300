"""The waiting-pipelines benchmark's grouping of OS thread names and its table, on made-up figures."""

from tests.benchmarks.idle import GROUPS, _group, render


def test_thread_names_fall_into_their_stage() -> None:
    assert _group("source-0") == "source"
    assert _group("inference-1") == "inference"
    assert _group("runner-0") == "runner"
    assert _group("sink-redis_stre") == "sink"
    assert _group("control-3f2a9c") == "control"
    assert _group("collector") == "collector"
    assert _group("post") == "post"
    assert _group("registration") == "registration"
    assert _group("python") == "main"
    assert _group("service-watch") == "other"  # not a pipeline's stage, though it starts like none of them
    assert _group("sourcery") == "other"  # a prefix alone is not a stage
    assert set(GROUPS) >= {_group(name) for name in ("source-0", "python", "x")}


def test_the_table_divides_by_the_pipelines() -> None:
    result = {"running": {"runner": (80.0, 10.0), "post": (4.0, 8.0)},
              "paused": {"source": (6.0, 10.0), "control": (0.2, 1.0)},
              "processed": [50, 50], "states": {"MUTED": 2}}
    table = render(result, pipelines=2, max_fps=5, seconds=10)
    assert "| runner | the inference service's model runs (`runner-N`) | 40.000 | 5.0 | 0.000 | 0.0 |" in table
    assert "| source | " in table and "| 3.000 | 5.0 |" in table
    assert "| **all** | | **42.00** | | **3.10** | |" in table
    assert "(5.0 results per second per pipeline)" in table
    assert "A paused pipeline costs 3.10 ms of CPU a second (0.31 % of a core), 3.00 of it" in table
