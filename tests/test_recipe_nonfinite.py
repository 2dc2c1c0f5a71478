"""A corrupt training utterance (NaN samples) cannot poison the model.

SpeechBrain's ``fit_batch`` back-propagates a NaN loss and steps the
optimizer; the recipe skips such batches, logs them, and stops the run
with a message when they keep coming.
"""

import json
import pathlib
import shutil
import sys

import numpy as np
import processes
import pytest
import soundfile
import torch

from data_prep.common import read_csv
from data_prep.mini_corpus import write_mini_vctk
from data_prep.vctk import prepare_vctk
from unipool_lobes.frontends.local_models import write_local_model

RECIPE = pathlib.Path(__file__).resolve().parents[1] / "recipes" / "VCTK"
sys.path.insert(0, str(RECIPE))
from demo import demo_overrides  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared mini VCTK and a tiny model."""
    root = tmp_path_factory.mktemp("nonfinite")
    corpus = write_mini_vctk(
        str(root / "corpus"),
        n_speakers=12,
        utterances_per_speaker=4,
        duration_range=(0.6, 1.2),
        seed=4,
    )
    prepare_vctk(corpus, root / "prep", split_source="generate", seed=4)
    model = write_local_model(str(root / "model"), size="tiny", seed=4)
    return corpus, model, root / "prep"


def _poison(wav_path):
    """Rewrites a wav with the same length, all samples NaN (float WAV)."""
    n_samples = soundfile.info(wav_path).frames
    samples = np.full(n_samples, np.nan, dtype=np.float32)
    soundfile.write(wav_path, samples, 16000, subtype="FLOAT")


def _run(prepared, out, poisoned, steps=6, interval=3, split="train"):
    corpus, model, prep = prepared
    work_prep = out.parent / f"{out.name}_prep"
    shutil.copytree(prep, work_prep)
    for row in read_csv(work_prep / f"{split}.csv")[:poisoned]:
        _poison(work_prep / pathlib.Path(row["wav"]).relative_to(prep))
    # Point the copied manifests at the copied (partly poisoned) audio.
    for name in ("train", "valid", "test"):
        text = (work_prep / f"{name}.csv").read_text()
        (work_prep / f"{name}.csv").write_text(
            text.replace(str(prep), str(work_prep))
        )
    overrides = demo_overrides(
        corpus,
        model,
        str(out),
        steps,
        interval,
        batch_size=4,
        prep_folder=work_prep,
        skip_prep=True,
        out_n_neurons=8,
        # A sampler seed whose 6 x 4 draws include the first utterance.
        seed=1234,
    )
    return processes.run(
        [sys.executable, "train.py", "hparams/unipool_vctk.yaml", *overrides],
        300,
        cwd=RECIPE,
    )


def test_nan_utterance_batches_are_skipped(prepared, tmp_path):
    """One NaN utterance: its batches are skipped, weights stay finite."""
    run = _run(prepared, tmp_path / "run", poisoned=1)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "Non-finite loss at step" in output
    for ckpt in (tmp_path / "run" / "save").glob("CKPT+*"):
        state = torch.load(ckpt / "embedding_model.ckpt")
        assert all(torch.isfinite(v).all() for v in state.values()), ckpt
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert np.isfinite(results["EER"])
    assert "skipped batches" in (tmp_path / "run" / "train_log.txt").read_text()


def test_repeated_nonfinite_losses_stop_the_run(prepared, tmp_path):
    """Every utterance NaN: the run stops with a message, not NaN weights."""
    # nonfinite_patience is 3: the 4th skip of an interval stops the run.
    run = _run(
        prepared, tmp_path / "run", poisoned=10_000, steps=20, interval=10
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "had a non-finite loss in this validation interval" in output
    assert not (tmp_path / "run" / "results.json").exists()


def test_a_nan_validation_utterance_is_named(prepared, tmp_path):
    """A validation utterance with NaN samples: the run stops naming it
    (before: its NaN embedding went into the EER silently)."""
    run = _run(prepared, tmp_path / "run", poisoned=1, split="valid")
    assert run.returncode != 0
    (first,) = read_csv(tmp_path / "run_prep" / "valid.csv")[:1]
    assert "non-finite embedding for 1 utterance(s) of the valid set" in (
        run.stdout
    ), run.stdout[-3000:]
    assert first["ID"] in run.stdout
