"""Checkpoints are never recovered half-written."""

import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from unipool_lobes.checkpoints import AtomicCheckpointer


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


def test_interrupted_deletion_is_ignored_then_removed(tmp_path):
    """A checkpoint missing a parameter file is not listed, and is cleaned."""
    checkpointer, _ = _checkpointer(AtomicCheckpointer, tmp_path)
    first = checkpointer.save_checkpoint(meta={"step": 1})
    second = checkpointer.save_checkpoint(meta={"step": 2})
    (second.path / "model.ckpt").unlink()  # rmtree cut short
    assert [c.meta["step"] for c in checkpointer.list_checkpoints()] == [1]
    assert checkpointer.recover_if_possible().path == first.path
    checkpointer.save_checkpoint(meta={"step": 3})
    folders = [p for p in tmp_path.iterdir() if p.name.startswith("CKPT")]
    assert len(folders) == 2, "the incomplete checkpoint was removed"
    steps = sorted(c.meta["step"] for c in checkpointer.list_checkpoints())
    assert steps == [1, 3]
    assert {p.name.endswith(".partial") for p in tmp_path.rglob("*")} == {False}
