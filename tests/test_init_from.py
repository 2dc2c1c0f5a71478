"""``init_from``: a run starts from another run's best checkpoint or from a
pretrained folder, strictly."""

import pytest
import torch

from unipool_lobes.inference.speaker import CheckpointMismatchError
from unipool_lobes.training.init_from import (
    init_checkpoint_folder,
    init_modules_from,
)


def _checkpoint(folder, eer, modules):
    folder.mkdir(parents=True)
    (folder / "CKPT.yaml").write_text(f"EER: {eer}\nstep: 1\n")
    for name, module in modules.items():
        torch.save(module.state_dict(), folder / f"{name}.ckpt")


def test_a_run_folder_gives_its_best_checkpoint(tmp_path):
    """The lowest validation EER wins, whatever the folder order: loading
    the first or the last checkpoint (a plain glob) fails here."""
    torch.manual_seed(0)
    worse, best, later = (torch.nn.Linear(4, 2) for _ in range(3))
    _checkpoint(tmp_path / "save/CKPT+1", 20.0, {"head": worse})
    _checkpoint(tmp_path / "save/CKPT+2", 5.0, {"head": best})
    _checkpoint(tmp_path / "save/CKPT+3", 9.0, {"head": later})
    assert init_checkpoint_folder(tmp_path).name == "CKPT+2"
    head = torch.nn.Linear(4, 2)
    init_modules_from(tmp_path, {"head": head}, ["head"])
    assert torch.equal(head.weight, best.weight)


def test_a_model_that_does_not_fit_names_the_keys(tmp_path):
    """A checkpoint of another architecture is refused with its keys, not
    loaded partially."""
    torch.save(torch.nn.Linear(4, 2).state_dict(), tmp_path / "head.ckpt")
    head = torch.nn.Linear(5, 2)
    before = head.weight.clone()
    with pytest.raises(CheckpointMismatchError, match=r"weight .*\[2, 4\]"):
        init_modules_from(tmp_path, {"head": head}, ["head"])
    assert torch.equal(head.weight, before)


def test_unknown_module_names_and_missing_sources_are_errors(tmp_path):
    """Each error names what is wrong."""
    torch.save(torch.nn.Linear(4, 2).state_dict(), tmp_path / "head.ckpt")
    with pytest.raises(KeyError, match="tail"):
        init_modules_from(tmp_path, {"head": torch.nn.Linear(4, 2)}, ["tail"])
    with pytest.raises(FileNotFoundError, match="not a folder"):
        init_checkpoint_folder(tmp_path / "nowhere")
    (tmp_path / "run/save/CKPT+1").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="validation EER"):
        init_checkpoint_folder(tmp_path / "run")
