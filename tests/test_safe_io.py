"""Locks, permissions, full disks and read-only folders
(``unipool_lobes.utils.safe_io``)."""

import json
import os
import signal
import socket
import time

import processes
import pytest
from filesystems import fill_disk

from data_prep.common import write_csv_atomic
from unipool_lobes.utils.safe_io import (
    LOCK_NAME,
    DiskFullError,
    FolderBusyError,
    FolderLock,
    OutputFolderError,
    atomic_open,
    ensure_writable_folder,
    lock_folder,
    make_temporary_folder,
)


def test_second_process_is_refused_naming_the_first(tmp_path, caplog):
    """A folder locked by a running process: refused at once, with its pid,
    host and start time; once it died, the lock is taken over with a
    warning naming it."""
    folder = tmp_path / "run"
    with processes.holding_lock(
        folder, "training", tmp_path, target=False
    ) as holder:
        started = time.monotonic()
        with pytest.raises(FolderBusyError) as error:
            lock_folder(folder, "training")
        assert time.monotonic() - started < 1
        message = str(error.value)
        assert f"pid {holder.pid}" in message
        assert f"host {socket.gethostname()}" in message
        record = json.loads((folder / LOCK_NAME).read_text())
        assert record["started"] in message and "training" in message
        os.kill(holder.pid, signal.SIGKILL)
        holder.finish()
    with caplog.at_level("WARNING", logger="unipool_lobes.utils.safe_io"):
        with lock_folder(folder, "training"):
            pass
    assert "taking over the lock" in caplog.text
    assert f"pid {holder.pid}" in caplog.text
    assert not (folder / LOCK_NAME).exists(), "released: the file is removed"


def test_nested_use_in_one_process_shares_the_lock(tmp_path):
    """The same process may lock a folder it holds (prep_folder inside the
    run folder, or the same folder)."""
    with lock_folder(tmp_path, "training"):
        with lock_folder(tmp_path, "VCTK preparation"):
            pass
        assert FolderLock.holder(tmp_path / LOCK_NAME)["purpose"] == "training"


def test_files_and_folders_honour_the_umask(tmp_path):
    """0644 files and 0755 folders under umask 022 (before: 0600 and 0700,
    unreadable to other users, from the temporary-file helpers)."""
    previous = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "a.txt") as out:
            out.write("x")
        write_csv_atomic(tmp_path / "m.csv", [{"ID": "a"}], ["ID"])
        folder = make_temporary_folder(tmp_path, ".staging-")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "m.csv").stat().st_mode & 0o777 == 0o644
    assert folder.stat().st_mode & 0o777 == 0o755


def test_full_disk_names_the_file_and_keeps_the_old_one(tmpfs):
    """ENOSPC during an atomic write: DiskFullError naming the file, the
    previous content intact, no temporary file left."""
    folder = tmpfs.mount("1m")
    target = folder / "train.csv"
    target.write_text("old content\n")
    fill_disk(folder, leave_bytes=0)
    with pytest.raises(DiskFullError) as error:
        with atomic_open(target) as out:
            out.write("x" * 200_000)
    assert str(target) in str(error.value) and "disk is full" in str(
        error.value
    )
    assert target.read_text() == "old content\n"
    assert sorted(p.name for p in folder.iterdir()) == [
        "filler.bin",
        "train.csv",
    ]


def test_read_only_folder_is_refused(tmpfs):
    """A read-only output folder (EROFS, even for root) is refused with its
    name and the reason; so is a folder where a file is in the way."""
    folder = tmpfs.mount("1m")
    (folder / "run").mkdir()
    tmpfs.read_only(folder)
    with pytest.raises(OutputFolderError, match="read-only file system"):
        ensure_writable_folder(folder / "run")
    with pytest.raises(OutputFolderError, match="read-only file system"):
        lock_folder(folder / "new", "training")


def test_file_in_the_way_is_refused(tmp_path):
    """A file where the output folder should be: named, not a traceback."""
    (tmp_path / "out").write_text("a file")
    with pytest.raises(OutputFolderError, match="a file is in the way"):
        ensure_writable_folder(tmp_path / "out" / "run")
