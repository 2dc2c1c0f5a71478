"""The VCTK recipe end to end on a generated mini corpus and a tiny model.

prepare -> train a few steps -> validate (EER on the valid trials picks the
checkpoint) -> test the best checkpoint -> scores file and results JSON; and
a run killed with SIGKILL resumes from its last checkpoint.
"""

import json
import os
import pathlib
import signal
import sys
import time

import processes
import pytest
from speechbrain.core import INTRA_EPOCH_CKPT_FLAG

from data_prep.mini_corpus import write_mini_vctk
from data_prep.trials import read_trials
from unipool_lobes.frontends.local_models import write_local_model

RECIPE = pathlib.Path(__file__).resolve().parents[1] / "recipes" / "VCTK"
sys.path.insert(0, str(RECIPE))
from demo import demo_overrides  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_inputs(tmp_path_factory):
    """A mini VCTK corpus and a tiny local wav2vec2, built once."""
    root = tmp_path_factory.mktemp("vctk_recipe")
    corpus = write_mini_vctk(
        str(root / "VCTK-mini"),
        n_speakers=24,
        utterances_per_speaker=6,
        seed=1,
    )
    model = write_local_model(
        str(root / "tiny-wav2vec2"), family="wav2vec2", size="tiny", seed=1
    )
    return corpus, model


def _train_command(corpus, model, output_folder, **extra):
    settings = {"batch_size": 8, "crop_seconds": 1.0, **extra}
    overrides = demo_overrides(
        corpus, model, str(output_folder), 4, 2, **settings
    )
    return [sys.executable, "train.py", "hparams/unipool_vctk.yaml", *overrides]


def test_vctk_recipe_end_to_end(demo_inputs, tmp_path):
    """Training writes the selected checkpoint, scores and results."""
    corpus, model = demo_inputs
    out = tmp_path / "run"
    processes.run(
        _train_command(corpus, model, out), 300, check=True, cwd=RECIPE
    )

    for name in ("train.csv", "valid.csv", "test.csv", "test_trials.csv"):
        assert (out / "data" / name).is_file()
    assert (out / "save" / "label_encoder.txt").is_file()
    assert (out / "hyperparams.yaml").is_file()
    assert (out / "env.log").is_file()
    assert (out / "det.png").read_bytes().startswith(b"\x89PNG")

    log = (out / "train_log.txt").read_text()
    assert log.count("valid EER") == 2, log
    assert "test EER" in log

    # The best-EER checkpoint is kept, and the latest one for resuming.
    checkpoints = list((out / "save").glob("CKPT+*"))
    assert 1 <= len(checkpoints) <= 2
    for checkpoint in checkpoints:
        meta = (checkpoint / "CKPT.yaml").read_text()
        assert "EER:" in meta and "EER_threshold:" in meta

    results = json.loads((out / "results.json").read_text())
    trials = read_trials(str(out / "data" / "test_trials.csv"))
    assert results["n_trials"] == len(trials["label"])
    assert 0.0 <= results["EER"] <= 1.0
    assert results["model"] == "unipool" and results["corpus"] == "VCTK"
    score_lines = (out / "scores.txt").read_text().splitlines()
    assert len(score_lines) == len(trials["label"])
    enrol, test, label, score = score_lines[0].split()
    assert (enrol, test) == (trials["enrol"][0], trials["test"][0])
    float(score)


def test_wrong_speaker_count_is_a_clear_error(demo_inputs, tmp_path):
    """out_n_neurons that does not fit the training speakers names the key."""
    corpus, model = demo_inputs
    run = processes.run(
        _train_command(corpus, model, tmp_path / "run", out_n_neurons=5),
        300,
        cwd=RECIPE,
    )
    assert run.returncode != 0
    message = run.stdout + run.stderr
    assert "out_n_neurons is 5 but the training manifest" in message


def _intra_epoch_checkpoints(save_folder):
    found = []
    for ckpt in pathlib.Path(save_folder).glob("CKPT+*"):
        meta = ckpt / "CKPT.yaml"
        if meta.is_file() and INTRA_EPOCH_CKPT_FLAG in meta.read_text():
            found.append(ckpt)
    return found


def test_killed_training_resumes(demo_inputs, tmp_path):
    """SIGKILL mid-run, then the same command resumes and finishes."""
    corpus, model = demo_inputs
    out = tmp_path / "run"
    command = _train_command(
        corpus,
        model,
        out,
        number_of_steps=40,
        valid_interval_steps=20,
        ckpt_interval_steps=2,
        ckpt_interval_minutes=0,
    )
    with processes.Started(
        command, 300, cwd=RECIPE, log=tmp_path / "first.log"
    ) as first:
        while not _intra_epoch_checkpoints(out / "save"):
            assert first.process.poll() is None, first.output()[-3000:]
            assert first.remaining() > 0, "no intra-epoch checkpoint in time"
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.finish()
    assert not (out / "results.json").exists()

    resumed = processes.run(command, 300, check=True, cwd=RECIPE)
    assert "Loading a checkpoint" in resumed.stdout
    log = (out / "train_log.txt").read_text()
    # Each validation logs the optimizer step it was reached at: a resumed
    # run that repeated or skipped steps would log other numbers.
    assert log.count("valid EER") == 2, log
    assert "step: 20," in log and "step: 40," in log, log
    assert (out / "results.json").is_file()
