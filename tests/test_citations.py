"""Every file the repository's text cites exists: comments, docstrings and docs name real paths.

Scanned: the sources, tests, tools, docs, compose files, the Makefile and README.md. A citation is a
path that starts with ``services/``, ``tools/``, ``tests/`` or ``docs/`` (a repository path: the
reference's own paths are written ``roboflow/inference/...`` and are not ours to check), or a bare
``NAME.md``, which must be one of the repository's Markdown files (an output file named after
``--output`` is not a citation). Globs and placeholders (``*``, ``<...>``, ``{...}``) are skipped.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED_DIRS = ("services", "tools", "tests", "docs", "compose")
SCANNED_FILES = ("README.md", "Makefile")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".toml", ".txt", ".json", ".cfg", ".ini", ""}

_PATH = re.compile(r"(?<![\w/.-])((?:services|tools|tests|docs)/[\w./*<>{}-]*[\w*>}])")
_MARKDOWN = re.compile(r"(?<![\w/.-])(--output\s+)?([\w-]+\.md)\b")


def _scanned() -> list[Path]:
    """The files scanned, this one excepted (its examples are not citations)."""
    files = [ROOT / name for name in SCANNED_FILES]
    for directory in SCANNED_DIRS:
        for path in sorted((ROOT / directory).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path != Path(__file__).resolve() and (
                    path.suffix in TEXT_SUFFIXES or path.name == "Dockerfile"):
                files.append(path)
    return files


def _citations(text: str) -> list[tuple[int, str]]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in _PATH.finditer(line):
            path = match.group(1).rstrip(".")
            if not any(char in path for char in "*<>{}"):
                found.append((number, path))
    return found


def _markdown_names(text: str) -> list[tuple[int, str]]:
    return [(number, match.group(2)) for number, line in enumerate(text.splitlines(), 1)
            for match in _MARKDOWN.finditer(line) if not match.group(1)]


def test_cited_repository_paths_exist() -> None:
    missing = []
    for file in _scanned():
        try:
            text = file.read_text()
        except UnicodeDecodeError:
            continue
        for number, path in _citations(text):
            if not (ROOT / path).exists():
                missing.append(f"{file.relative_to(ROOT)}:{number}: {path}")
    assert not missing, "cited but not in the repository:\n" + "\n".join(missing)


def test_cited_markdown_files_exist() -> None:
    names = {path.name for path in ROOT.rglob("*.md") if path.relative_to(ROOT).parts[0] not in (".venv", "data")}
    missing: list[str] = []
    for file in _scanned():
        try:
            text = file.read_text()
        except UnicodeDecodeError:
            continue
        missing.extend(f"{file.relative_to(ROOT)}:{number}: {name}"
                       for number, name in _markdown_names(text) if name not in names)
    assert not missing, "cited but not in the repository:\n" + "\n".join(missing)


def test_the_scan_finds_citations() -> None:
    # Guards the patterns themselves: known citations are found, the reference's paths are not ours.
    text = ("see ``tests/e2e/test_credentials.py``, docs/benchmarks.md and protocol.md; "
            "roboflow/inference/tests/workflows/x.py; python -m x --output gpu.md")
    assert _citations(text) == [(1, "tests/e2e/test_credentials.py"), (1, "docs/benchmarks.md")]
    assert _markdown_names(text) == [(1, "protocol.md")]
