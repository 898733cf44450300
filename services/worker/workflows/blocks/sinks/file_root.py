"""Where ``local_file_sink`` may write: only under the operator's root (``SinkSettings.file_root``).

A workflow names a directory relative to that root. Absolute paths, ``..`` and symbolic links that
lead out of the root are refused with an error saying why; with no root configured the block cannot
write at all. The directory is checked (and created) on every write, and files are created with
``O_EXCL`` and appended to with ``O_NOFOLLOW``, so a link planted later is not followed either.
"""

import os
from datetime import datetime
from pathlib import Path

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_NAME_TRIES = 100


def confined_directory(root: Path | None, target_directory: str) -> Path:
    """The existing, symlink-free directory ``target_directory`` names under ``root`` (created if needed)."""
    if root is None:
        raise ValueError("local_file_sink cannot write here: the worker has no directory for file sinks "
                         "(SinkSettings.file_root is not set)")
    relative = Path(target_directory)
    if "\x00" in target_directory:
        raise ValueError("target_directory contains a NUL character")
    if relative.is_absolute():
        raise ValueError(f"target_directory {target_directory!r} must be relative to the file sinks' root, "
                         "not an absolute path")
    if ".." in relative.parts:
        raise ValueError(f"target_directory {target_directory!r} must not contain '..'")
    base = root.resolve()
    base.mkdir(parents=True, exist_ok=True)
    directory = _inside(base, base / relative, target_directory)
    directory.mkdir(parents=True, exist_ok=True)
    return _inside(base, directory, target_directory)  # again: a link may have appeared meanwhile


def check_prefix(prefix: str) -> str:
    if not prefix or "/" in prefix or "\\" in prefix or "\x00" in prefix:
        raise ValueError(f"file_name_prefix {prefix!r} must be a non-empty file name (no '/')")
    return prefix


def create_file(directory: Path, prefix: str, extension: str, when: float, content: str) -> Path:
    """A new ``<prefix>_<YYYY_MM_DD_HH_MM_SS_micro>.<extension>`` holding ``content`` (``_<n>`` added
    before the extension when that name is taken, where the reference would overwrite)."""
    stamp = datetime.fromtimestamp(when).strftime("%Y_%m_%d_%H_%M_%S_%f")
    for attempt in range(_MAX_NAME_TRIES):
        suffix = f"_{attempt}" if attempt else ""
        path = directory / f"{prefix}_{stamp}{suffix}.{extension}"
        try:
            descriptor = os.open(path, _CREATE, 0o644)
        except FileExistsError:
            continue
        _write_all(descriptor, content)
        return path
    raise FileExistsError(f"no free file name for {prefix}_{stamp}.{extension} in {directory}")


def append_to(path: Path, content: str) -> None:
    _write_all(os.open(path, _APPEND), content)


def _inside(base: Path, path: Path, shown: str) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(base):
        raise ValueError(f"target_directory {shown!r} leads out of the file sinks' root through a symbolic link")
    return resolved


def _write_all(descriptor: int, content: str) -> None:
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(content)
