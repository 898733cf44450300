"""Virtual environments of their own beside the project's ``.venv``, each from a few pinned wheels.

Used where a test or a benchmark needs a package the project must not depend on: OpenCV 4's Darknet
reader as the converter's oracle (:mod:`tools.opencv4_env`), the reference stream manager
(``streamvision``) that ``tests/benchmarks/tcp_front.py`` measures ours against.

Idempotent: an environment already built from the same requirements (its ``requirements.txt``) is
left alone; a failed or interrupted build leaves nothing that passes for a good one.
"""

import logging
import shutil
import subprocess
import venv
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("side_env")


def python_of(dest: Path) -> Path:
    return dest / "bin" / "python"


def ensure(dest: Path, requirements: Sequence[str], binary_only: bool = True, no_deps: Sequence[str] = ()) -> Path:
    """The interpreter of the environment at ``dest``, built (with pip, from PyPI) unless current;
    ``no_deps`` are installed after ``requirements`` without their own dependencies."""
    stamp = dest / "requirements.txt"
    wanted = "\n".join([*requirements, *(f"{name} --no-deps" for name in no_deps)]) + "\n"
    if python_of(dest).is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return python_of(dest)
    log.info("building %s with %s", dest, ", ".join(requirements))
    shutil.rmtree(dest, ignore_errors=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(dest)
    command = [str(python_of(dest)), "-m", "pip", "install", "-q", "--disable-pip-version-check",
               *(["--only-binary=:all:"] if binary_only else [])]
    for packages, extra in ((requirements, []), (no_deps, ["--no-deps"])):
        if not packages:
            continue
        result = subprocess.run([*command, *extra, *packages], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(dest, ignore_errors=True)
            raise RuntimeError(f"pip install {' '.join(packages)} into {dest} failed: {result.stderr[-800:]}")
    stamp.write_text(wanted)  # written last: an interrupted build is rebuilt
    return python_of(dest)
