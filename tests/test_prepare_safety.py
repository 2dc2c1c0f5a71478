"""Preparations refuse a busy or read-only folder and stop cleanly on a
full disk."""

import processes
import pytest
from filesystems import fill_disk

from data_prep.mini_corpus import write_mini_vctk
from data_prep.vctk import prepare_vctk
from unipool_lobes.utils.safe_io import (
    DiskFullError,
    FolderBusyError,
    OutputFolderError,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A small mini VCTK."""
    return write_mini_vctk(
        str(tmp_path_factory.mktemp("safety") / "vctk"),
        n_speakers=6,
        utterances_per_speaker=3,
        duration_range=(0.3, 0.5),
        seed=6,
    )


def _prepare(corpus, folder):
    return prepare_vctk(corpus, folder, split_source="generate", num_workers=1)


def test_a_second_preparation_of_a_folder_is_refused(corpus, tmp_path):
    """While another process prepares the folder: refused at once, naming
    it (before: both wrote the same files)."""
    folder = tmp_path / "prep"
    with processes.holding_lock(
        folder, "vctk preparation", tmp_path, target=False
    ) as holder:
        with pytest.raises(FolderBusyError, match=f"pid {holder.pid}"):
            _prepare(corpus, folder)
    assert not (folder / "train.csv").exists()


def test_a_finished_preparation_is_reused_on_a_read_only_disk(corpus, tmpfs):
    """Prepared, then the disk made read-only: the preparation is reused;
    a new one there is refused before any work."""
    disk = tmpfs.mount("16m")
    outputs = _prepare(corpus, disk / "prep")
    tmpfs.read_only(disk)
    assert _prepare(corpus, disk / "prep") == outputs
    with pytest.raises(OutputFolderError, match="read-only file system"):
        _prepare(corpus, disk / "other")


def test_a_full_disk_stops_the_preparation_naming_the_file(corpus, tmpfs):
    """ENOSPC while converting audio: DiskFullError naming a file under the
    folder (before: a bare AssertionError from the WAV writer)."""
    disk = tmpfs.mount("4m")
    fill_disk(disk, leave_bytes=16 * 1024)
    with pytest.raises(DiskFullError) as error:
        _prepare(corpus, disk / "prep")
    assert str(disk / "prep") in str(error.value)
    assert "the disk is full" in str(error.value)
