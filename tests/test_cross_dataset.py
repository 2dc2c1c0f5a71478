"""Cross-dataset evaluation: a VCTK-trained run scored on another corpus.

``unipool-sv score`` takes a training run folder (exported on the fly) and
any prepared corpus's test trials and manifest; here a mini LibriSpeech,
whose utterances are FLAC files read in place.
"""

import json

import pytest

from data_prep.librispeech import prepare_librispeech
from data_prep.mini_corpus import write_mini_librispeech
from data_prep.trials import read_trials
from unipool_lobes.inference.cli import default_score_folder, main

pytestmark = pytest.mark.slow


def test_vctk_run_on_librispeech_trials(trained_vctk_run, tmp_path):
    """Scores, results and plots land beside the model, one line a trial."""
    corpus = write_mini_librispeech(
        tmp_path / "LibriSpeech",
        n_speakers=12,
        chapters_per_speaker=1,
        utterances_per_chapter=3,
        duration_range=(1.0, 2.0),
        seed=7,
    )
    paths = prepare_librispeech(
        corpus,
        tmp_path / "prep",
        split_source="generate",
        train_subsets=("train-clean-100",),
        valid_subsets=("dev-clean",),
        test_subsets=("test-clean",),
        num_workers=1,
    )
    code = main(
        [
            "score",
            "--model",
            str(trained_vctk_run),
            "--trials",
            str(paths["test_trials"]),
            "--manifest",
            str(paths["test"]),
            "--no-progress",
        ]
    )
    assert code == 0
    out = default_score_folder(
        trained_vctk_run, paths["test_trials"], paths["test"]
    )
    results = json.loads((out / "results.json").read_text())
    trials = read_trials(str(paths["test_trials"]))
    assert results["n_trials"] == len(trials["label"]) > 0
    assert 0.0 <= results["EER"] <= 1.0
    assert len((out / "scores.txt").read_text().splitlines()) == len(
        trials["label"]
    )
    assert (out / "det.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "layer_significance.png").is_file()
