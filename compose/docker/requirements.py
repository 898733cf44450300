"""Prints the pinned requirements of the package's core plus the given extras, one per line, from pyproject.toml.

Used by compose/Dockerfile where an image needs a variant of an extra: the GPU worker swaps
``onnxruntime`` for ``onnxruntime-gpu`` at the same version, the Jetson worker drops it (its build
installs NVIDIA's Jetson wheel instead). Also imported by tests/deploy to check each image's install set.

    python compose/docker/requirements.py worker --replace onnxruntime=onnxruntime-gpu
    python compose/docker/requirements.py worker --drop onnxruntime

Standard library only: it runs on the image's bare interpreter before anything is installed.
"""

import argparse
import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalise(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def split_requirement(requirement: str) -> tuple[str, str]:
    """(project name as written, the rest: extras, version specifier, markers)."""
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return match.group(1), requirement.strip()[len(match.group(1)):]


def requirement_name(requirement: str) -> str:
    return normalise(split_requirement(requirement)[0])


def requirements(
    extras: list[str],
    replace: dict[str, str] | None = None,
    drop: set[str] | None = None,
    pyproject: Path = PYPROJECT,
) -> list[str]:
    """The core dependencies plus ``extras``' (deduplicated, in order), with names replaced or dropped."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise ValueError(f"unknown extras {unknown}; pyproject.toml has {sorted(optional)}")
    replace = {normalise(old): new for old, new in (replace or {}).items()}
    drop = {normalise(name) for name in drop or set()}
    result: list[str] = []
    for requirement in [*project["dependencies"], *(r for extra in extras for r in optional[extra])]:
        written, rest = split_requirement(requirement)
        name = normalise(written)
        if name in drop:
            continue
        if name in replace:
            requirement = replace[name] + rest
        if requirement not in result:
            result.append(requirement)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extras", help="comma-separated extras of pyproject.toml, e.g. worker")
    parser.add_argument("--replace", action="append", default=[], metavar="OLD=NEW",
                        help="install NEW at OLD's version specifier instead of OLD")
    parser.add_argument("--drop", action="append", default=[], metavar="NAME", help="leave NAME out")
    parser.add_argument("--pyproject", type=Path, default=PYPROJECT)
    args = parser.parse_args(argv)
    try:
        replace = dict(pair.split("=", 1) for pair in args.replace)
    except ValueError:
        parser.error("--replace takes OLD=NEW")
    try:
        lines = requirements([e for e in args.extras.split(",") if e], replace, set(args.drop), args.pyproject)
    except (ValueError, KeyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
