"""Checkpoints are never recovered half-written."""

import pytest
import torch
from filesystems import fill_disk
from speechbrain.utils.checkpoints import Checkpointer

from unipool_lobes.training.checkpoints import (
    AtomicCheckpointer,
    CheckpointCorruptError,
    verify_checkpoint,
)
from unipool_lobes.utils.safe_io import DiskFullError


class _State:
    """A recoverable whose save can be made to die halfway."""

    def __init__(self):
        self.fail = False

    @staticmethod
    def save(obj, path):
        if obj.fail:
            path.write_bytes(b"PK\x03")  # a truncated zip, as torch.save
            raise KeyboardInterrupt("killed while saving")
        path.write_text("complete")

    @staticmethod
    def load(obj, path, end_of_epoch):
        assert path.read_text() == "complete", "half-written file loaded"


def _checkpointer(cls, folder):
    state = _State()
    checkpointer = cls(
        folder,
        {"model": torch.nn.Linear(3, 3), "state": state},
        custom_save_hooks={"state": _State.save},
        custom_load_hooks={"state": _State.load},
    )
    return checkpointer, state


@pytest.mark.parametrize("cls", [Checkpointer, AtomicCheckpointer])
def test_save_killed_midway(cls, tmp_path):
    """SpeechBrain's checkpointer lists the half-written checkpoint; ours
    does not, and recovers the last complete one."""
    checkpointer, state = _checkpointer(cls, tmp_path)
    checkpointer.save_checkpoint(meta={"step": 1})
    state.fail = True
    with pytest.raises(KeyboardInterrupt):
        checkpointer.save_checkpoint(meta={"step": 2})
    steps = sorted(c.meta["step"] for c in checkpointer.list_checkpoints())
    if cls is Checkpointer:
        assert steps == [1, 2]  # the broken one would be recovered
    else:
        assert steps == [1]
        recovered, _ = _checkpointer(cls, tmp_path)
        assert recovered.recover_if_possible().meta["step"] == 1


def test_incomplete_checkpoint_is_ignored_then_moved_aside(tmp_path):
    """A checkpoint missing a file it was saved with is not listed, and at
    the next save it is moved aside, not deleted (before: deleted with its
    weights)."""
    checkpointer, _ = _checkpointer(AtomicCheckpointer, tmp_path)
    first = checkpointer.save_checkpoint(meta={"step": 1})
    second = checkpointer.save_checkpoint(meta={"step": 2})
    (second.path / "model.ckpt").unlink()
    assert [c.meta["step"] for c in checkpointer.list_checkpoints()] == [1]
    assert checkpointer.recover_if_possible().path == first.path
    checkpointer.save_checkpoint(meta={"step": 3})
    folders = [p for p in tmp_path.iterdir() if p.name.startswith("CKPT")]
    assert len(folders) == 2
    aside = tmp_path / "moved_aside" / second.path.name
    assert (aside / "state.ckpt").read_text() == "complete"
    steps = sorted(c.meta["step"] for c in checkpointer.list_checkpoints())
    assert steps == [1, 3]
    assert {p.name.endswith(".partial") for p in tmp_path.rglob("*")} == {False}


def test_folder_without_meta_is_moved_aside_with_a_warning(tmp_path, caplog):
    """Weights in a CKPT folder without CKPT.yaml are kept (moved aside,
    named in a warning); a folder left by an interrupted save (its meta
    still .partial) or deletion is removed."""
    checkpointer, _ = _checkpointer(AtomicCheckpointer, tmp_path)
    kept = checkpointer.save_checkpoint(meta={"step": 1})
    orphan = tmp_path / "CKPT+orphan"
    orphan.mkdir()
    (orphan / "model.ckpt").write_bytes(b"weights")
    interrupted = tmp_path / "CKPT+interrupted"
    interrupted.mkdir()
    (interrupted / "CKPT.yaml.partial").write_text("step: 2\n")
    (interrupted / "model.ckpt").write_bytes(b"half")
    deleting = tmp_path / ".deleting-CKPT+old"
    deleting.mkdir()
    with caplog.at_level("WARNING"):
        checkpointer.save_checkpoint(meta={"step": 3})
    assert (tmp_path / "moved_aside" / "CKPT+orphan" / "model.ckpt").is_file()
    assert str(orphan) in caplog.text and "moved to" in caplog.text
    assert not interrupted.exists() and not deleting.exists()
    assert kept.path.is_dir()


def test_checksums_catch_a_changed_or_truncated_file(tmp_path):
    """The meta records each file's SHA-256; recovering from a checkpoint
    whose file changed is an error naming it (before: loaded silently)."""
    model = torch.nn.Linear(3, 3)
    checkpointer = AtomicCheckpointer(tmp_path, {"model": model})
    saved = checkpointer.save_checkpoint(meta={"step": 1})
    record = saved.meta["checksums"]["model.ckpt"]
    assert record["bytes"] == (saved.path / "model.ckpt").stat().st_size
    data = bytearray((saved.path / "model.ckpt").read_bytes())
    data[-200:-136] = bytes(64)  # 64 bytes zeroed, size unchanged
    (saved.path / "model.ckpt").write_bytes(bytes(data))
    with pytest.raises(CheckpointCorruptError, match="model.ckpt: its content"):
        checkpointer.recover_if_possible()
    (saved.path / "model.ckpt").write_bytes(bytes(data[:100]))
    fresh = AtomicCheckpointer(tmp_path, {"model": model})
    # Truncated: no longer the size it was saved with, so not complete.
    assert fresh.list_checkpoints() == []
    with pytest.raises(CheckpointCorruptError, match="bytes, but"):
        verify_checkpoint(saved)


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmpfs):
    """ENOSPC while writing a checkpoint: an error naming the file and the
    full disk, the incomplete checkpoint removed, the previous one intact
    and recoverable (before: RuntimeError '... unexpected pos')."""
    folder = tmpfs.mount("4m")
    model = torch.nn.Linear(256, 256)  # 257 kB per parameter file
    checkpointer = AtomicCheckpointer(folder / "save", {"model": model})
    first = checkpointer.save_checkpoint(meta={"step": 1})
    fill_disk(folder, leave_bytes=64 * 1024)
    with torch.no_grad():
        model.weight.add_(1.0)
    with pytest.raises(DiskFullError) as error:
        checkpointer.save_checkpoint(meta={"step": 2})
    message = str(error.value)
    assert "the disk is full" in message and str(folder / "save") in message
    assert [p.name for p in (folder / "save").iterdir()] == [first.path.name]
    fresh_model = torch.nn.Linear(256, 256)
    fresh = AtomicCheckpointer(folder / "save", {"model": fresh_model})
    assert fresh.recover_if_possible().meta["step"] == 1
    torch.testing.assert_close(fresh_model.weight, model.weight - 1.0)
