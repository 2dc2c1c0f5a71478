"""The LibriSpeech recipe end to end on a generated mini corpus.

prepare (FLAC read in place, generated gender-balanced trials) -> train a
few steps with a tiny local wav2vec2 -> validate (EER picks the checkpoint)
-> test the best checkpoint -> scores file and results JSON, through the
same ``train.py`` and ``hparams/unipool_librispeech.yaml`` as the paper's
experiment, changed by command-line overrides only.
"""

import json
import pathlib
import sys

import processes
import pytest

from data_prep.common import read_csv
from data_prep.mini_corpus import write_mini_librispeech
from data_prep.trials import read_trials
from unipool_lobes.frontends.local_models import write_local_model

RECIPE = pathlib.Path(__file__).resolve().parents[1] / "recipes/LibriSpeech"
N_TRAIN_SPEAKERS = 8

pytestmark = pytest.mark.slow


def _overrides(corpus, model, output_folder):
    """The paper's yaml turned into a tiny CPU run on the mini corpus."""
    settings = {
        "data_folder": corpus,
        "output_folder": output_folder,
        "prep_folder": f"{output_folder}/data",
        "split_source": "generate",
        "train_subsets": "[train-clean-100]",
        "valid_subsets": "[dev-clean]",
        "test_subsets": "[test-clean]",
        "ssl_source": model,
        "ssl_cache": f"{output_folder}/ssl_cache",
        "ssl_hidden_size": 32,
        "ssl_num_layers": 2,
        "out_n_neurons": N_TRAIN_SPEAKERS,
        "number_of_steps": 4,
        "valid_interval_steps": 2,
        "batch_size": 8,
        "eval_batch_size": 16,
        "crop_seconds": 1.0,
        "num_workers": 0,
        "device": "cpu",
    }
    return [f"--{key}={value}" for key, value in settings.items()]


def test_librispeech_recipe_end_to_end(tmp_path):
    """Training writes the selected checkpoint, scores and results."""
    corpus = write_mini_librispeech(
        tmp_path / "LibriSpeech",
        n_speakers=N_TRAIN_SPEAKERS,
        chapters_per_speaker=2,
        utterances_per_chapter=2,
        duration_range=(1.0, 2.0),
        seed=2,
    )
    model = write_local_model(
        tmp_path / "tiny-wav2vec2", family="wav2vec2", size="tiny", seed=2
    )
    out = tmp_path / "run"
    command = [
        sys.executable,
        "train.py",
        "hparams/unipool_librispeech.yaml",
        *_overrides(corpus, model, out),
    ]
    processes.run(command, 300, check=True, cwd=RECIPE)

    train = read_csv(out / "data/train.csv")
    assert len({row["spk_id"] for row in train}) == N_TRAIN_SPEAKERS
    assert all(row["wav"].endswith(".flac") for row in train)
    assert {row["subset"] for row in train} == {"train-clean-100"}
    test_speakers = {row["spk_id"] for row in read_csv(out / "data/test.csv")}
    assert test_speakers.isdisjoint(row["spk_id"] for row in train)

    log = (out / "train_log.txt").read_text()
    assert log.count("valid EER") == 2, log
    assert "test EER" in log
    # The best-EER checkpoint is kept, and the newest one for resuming
    # (SpeechBrain's keep_recent) when it is another.
    checkpoints = list((out / "save").glob("CKPT+*"))
    assert 1 <= len(checkpoints) <= 2
    assert all("EER" in (c / "CKPT.yaml").read_text() for c in checkpoints)

    results = json.loads((out / "results.json").read_text())
    trials = read_trials(str(out / "data/test_trials.csv"))
    assert results["n_trials"] == len(trials["label"])
    assert sum(trials["label"]) * 2 == len(trials["label"])
    assert 0.0 <= results["EER"] <= 1.0
    assert results["corpus"] == "LibriSpeech"
    score_lines = (out / "scores.txt").read_text().splitlines()
    assert len(score_lines) == len(trials["label"])
    enrol, test, label, score = score_lines[0].split()
    assert (enrol, test) == (trials["enrol"][0], trials["test"][0])
    float(score)
