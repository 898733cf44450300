"""Timings that two end-to-end tests take while they check behaviour, written as two sections.

- **Redis restarts** (``tests/e2e/test_redis_restart.py``): Redis stopped for 4 s and started again
  under a running pipeline (one live camera at max_fps 5), with an append-only file ("with data") and
  with no persistence ("empty"). The test asserts that the same task carries on (epoch 1, no restart)
  and every command works again; it prints how the replies during the outage went and how long each
  step of the recovery took.
- **TERMINATE from every state** (``tests/e2e/test_camera_faults.py``, its ``terminate`` tests): the
  wall time of each TERMINATE reply, which the test asserts to be a success that unlists the pipeline
  and leaves a final record.

This benchmark runs those tests ``--rounds`` times, each round a pytest process of its own with ``-s``,
parses the lines they print and writes the range over the rounds. A round whose tests fail stops the
benchmark before anything is written.

Usage: ``python -m tests.benchmarks.e2e_timings [--output docs/benchmarks.md] [--rounds 4]``
"""

import argparse
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from tests.benchmarks.report import stamp, write_section

ROOT = Path(__file__).resolve().parents[2]
REDIS_TEST = "tests/e2e/test_redis_restart.py::test_pipeline_and_commands_survive_a_redis_restart"
TERMINATE_TESTS = ("tests/e2e/test_camera_faults.py", "-k", "terminate")

_OUTAGE = re.compile(r"^\[(?P<case>[^\]]+)\] outage (?P<outage>[\d.]+) s; replies during it: (?P<replies>.+)$")
_REPLY = re.compile(r"(?P<kind>\w+) (?P<ms>\d+) ms")
_BACK = re.compile(r"^\[(?P<case>[^\]]+)\] Redis back -> pipeline listed (?P<listed>[\d.]+) s, first new result "
                   r"(?P<first>-?[\d.]+) s, worker registered (?P<registered>[\d.]+) s, a new pipeline started "
                   r"(?P<started>[\d.]+) s$")
_LOST = re.compile(r"^\[(?P<case>[^\]]+)\] frame ids: .*: about (?P<lost>\d+) results lost; results_dropped "
                   r"reported (?P<dropped>\d+)$")
_TERMINATE = re.compile(r"^terminate (?:from (?P<state>.+?)|(?P<after>after .+?)): (?P<ms>\d+) ms$")

Samples = dict[str, dict[str, list[float]]]  # case or state -> figure -> one value per run


def run_tests(*selection: str) -> list[str]:
    """The lines the selected tests print, in a pytest process of its own; RuntimeError when one fails."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:randomly", *selection],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"the tests failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-1500:]}")
    return done.stdout.splitlines()


def parse_redis(lines: list[str], samples: Samples) -> None:
    for line in lines:
        line = line.strip()
        if match := _OUTAGE.match(line):
            figures = samples[match["case"]]
            figures["outage"].append(float(match["outage"]))
            for reply in _REPLY.finditer(match["replies"]):
                figures[f"reply {reply['kind']}"].append(float(reply["ms"]))
        elif match := _BACK.match(line):
            for name in ("listed", "first", "registered", "started"):
                samples[match["case"]][name].append(float(match[name]))
        elif match := _LOST.match(line):
            samples[match["case"]]["lost"].append(float(match["lost"]))
            samples[match["case"]]["dropped"].append(float(match["dropped"]))


def parse_terminate(lines: list[str], samples: Samples) -> None:
    for line in lines:
        if match := _TERMINATE.match(line.strip()):
            samples[match["state"] or match["after"]]["ms"].append(float(match["ms"]))


def span(values: list[float], digits: int = 0, unit: str = "") -> str:
    if not values:
        return "not printed"
    low, high = min(values), max(values)
    text = f"{low:.{digits}f}" if low == high else f"{low:.{digits}f}-{high:.{digits}f}"
    return text + unit


def render_redis(samples: Samples, rounds: int) -> str:
    cases = [case for case in ("with data", "empty") if case in samples] + \
            [case for case in samples if case not in ("with data", "empty")]
    rows = [
        ("outage (Redis stopped → started)", "outage", 1, " s"),
        ("reply to STATUS during the outage (`internal_error`)", "reply status", 0, " ms"),
        ("reply to LIST_PIPELINES during the outage", "reply list_pipelines", 0, " ms"),
        ("reply to MUTE during the outage", "reply mute", 0, " ms"),
        ("Redis back → pipeline listed again", "listed", 2, " s"),
        ("Redis back → first new result written", "first", 2, " s"),
        ("Redis back → worker registered again", "registered", 2, " s"),
        ("Redis back → a new INIT answered", "started", 2, " s"),
        ("results lost (frames of the outage, from the frame ids)", "lost", 0, ""),
        ("`results_dropped` reported", "dropped", 0, ""),
    ]
    lines = [
        "## Faults: Redis restarts", "", stamp(), "",
        f"Redis stopped for 4 s and started again under a running pipeline (one live camera at max_fps 5), "
        f"{rounds} runs per case of `{REDIS_TEST}` (`python -m tests.benchmarks.e2e_timings`), which asserts that "
        "the same task carries on (epoch 1, restarts 0, no duplicated result) and that every command works "
        "again; min-max over the runs. \"With data\": redis-server with an append-only file; \"empty\": no "
        "persistence, everything lost (records, index, spec, streams, Celery queues, registrations) and put back "
        "by the running task itself.", "",
        "| | " + " | ".join(cases) + " |",
        "|---|" + "---|" * len(cases),
    ]
    for label, key, digits, unit in rows:
        lines.append(f"| {label} | " + " | ".join(span(samples[case][key], digits, unit) for case in cases) + " |")
    return "\n".join(lines)


def render_terminate(samples: Samples, rounds: int) -> str:
    lines = [
        "## TERMINATE from every state", "", stamp(), "",
        f"Wall time of the TERMINATE reply, {rounds} runs of the `terminate` tests of "
        "`tests/e2e/test_camera_faults.py` (`python -m tests.benchmarks.e2e_timings`), each of which asserts a "
        "success that unlists the pipeline and leaves a final record (an unknown id: `not_found`); min-max over "
        "the runs.", "",
        "| state when terminated | ms |",
        "|---|---|",
    ]
    lines += [f"| {state} | {span(figures['ms'])} |" for state, figures in samples.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    redis_samples: Samples = defaultdict(lambda: defaultdict(list))
    terminate_samples: Samples = defaultdict(lambda: defaultdict(list))
    for index in range(args.rounds):
        parse_redis(run_tests(REDIS_TEST), redis_samples)
        parse_terminate(run_tests(*TERMINATE_TESTS), terminate_samples)
        print(f"round {index + 1} of {args.rounds} done", flush=True)
    if not redis_samples or not terminate_samples:
        raise SystemExit("the tests printed no timings: their output format changed")
    write_section(args.output, "faults-redis", render_redis(redis_samples, args.rounds))
    write_section(args.output, "terminate", render_terminate(terminate_samples, args.rounds))
    print(render_redis(redis_samples, args.rounds))
    print(render_terminate(terminate_samples, args.rounds))


if __name__ == "__main__":
    main()
