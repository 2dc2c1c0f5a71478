"""The recipe under torchrun DDP (2 CPU processes, gloo) matches one process.

Each process takes half of every global batch and SpeechBrain averages the
gradients, so two processes with ``batch_size=4`` follow the same training
as one process with ``batch_size=8`` when nothing random differs between
them: whole utterances (no random crops) and no dropout. Validation and test
embeddings are computed on shards and gathered, and only rank 0 writes.
"""

import json
import pathlib
import subprocess
import sys

import pytest
import torch

from data_prep.mini_corpus import write_mini_vctk
from unipool_lobes.local_models import write_local_model

RECIPE = pathlib.Path(__file__).resolve().parents[1] / "recipes" / "VCTK"
sys.path.insert(0, str(RECIPE))
from demo import demo_overrides  # noqa: E402

pytestmark = pytest.mark.slow


def _command(launcher, corpus, model, prep, out, batch_size):
    return [
        *launcher,
        "train.py",
        "hparams/unipool_vctk.yaml",
        *demo_overrides(
            corpus,
            model,
            str(out),
            4,
            2,
            batch_size=batch_size,
            prep_folder=prep,
            crop_seconds=30.0,
            dropout=0.0,
            seed=3,
            out_n_neurons=8,
        ),
    ]


def _best_checkpoint(out):
    (ckpt,) = (out / "save").glob("CKPT+*")
    return torch.load(ckpt / "embedding_model.ckpt", map_location="cpu")


def test_ddp_matches_single_process(tmp_path):
    """Two gloo processes give the weights and EER of one process."""
    corpus = write_mini_vctk(
        str(tmp_path / "corpus"),
        n_speakers=12,
        utterances_per_speaker=4,
        duration_range=(0.6, 1.2),
        seed=2,
    )
    model = write_local_model(str(tmp_path / "model"), size="tiny", seed=2)
    prep = tmp_path / "prep"

    single = tmp_path / "single"
    subprocess.run(
        _command([sys.executable], corpus, model, prep, single, 8),
        cwd=RECIPE,
        check=True,
    )
    ddp = tmp_path / "ddp"
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29533",
    ]
    run = subprocess.run(
        [
            *_command(torchrun, corpus, model, prep, ddp, 4),
            "--distributed_backend=gloo",
        ],
        cwd=RECIPE,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-4000:]

    # Gradients agree to float precision, but Adam's first steps move each
    # weight by about lr whatever the gradient's size, so elements whose
    # gradient is nearly zero (e.g. biases before batch norm) may step in
    # opposite directions: a few lr (~1e-3) is the expected weight gap.
    single_state = _best_checkpoint(single)
    ddp_state = _best_checkpoint(ddp)
    assert single_state.keys() == ddp_state.keys()
    for key, value in single_state.items():
        if value.is_floating_point():
            torch.testing.assert_close(
                ddp_state[key], value, atol=1e-2, rtol=1e-2, msg=key
            )

    single_results = json.loads((single / "results.json").read_text())
    ddp_results = json.loads((ddp / "results.json").read_text())
    assert ddp_results["n_trials"] == single_results["n_trials"]
    assert abs(ddp_results["EER"] - single_results["EER"]) < 0.05
    single_scores = _read_scores(single / "scores.txt")
    ddp_scores = _read_scores(ddp / "scores.txt")
    assert single_scores.keys() == ddp_scores.keys()
    gap = max(abs(ddp_scores[k] - v) for k, v in single_scores.items())
    assert gap < 1e-2, f"scores differ by up to {gap}"
    # Only rank 0 wrote: one checkpoint, one results file.
    assert len(list((ddp / "save").glob("CKPT+*"))) == 1


def _read_scores(path):
    scores = {}
    for line in path.read_text().splitlines():
        enrol, test, _, score = line.split()
        scores[enrol, test] = float(score)
    return scores
