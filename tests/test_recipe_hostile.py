"""Hostile inputs to the training script: each fails early and clearly, or
is handled (stereo audio is down-mixed, short files are padded and masked).

The script runs in-process (its ``main``) so the cases that must fail fast
cost no model training.
"""

import pathlib
import shutil
import sys

import numpy as np
import pytest
import soundfile
from recipe_script import load_recipe_script

from data_prep.common import read_csv, write_csv_atomic
from data_prep.mini_corpus import write_mini_vctk
from data_prep.vctk import prepare_vctk
from unipool_lobes.frontends.local_models import write_local_model

RECIPES = pathlib.Path(__file__).resolve().parents[1] / "recipes"
YAML = RECIPES / "VCTK" / "hparams" / "unipool_vctk.yaml"
sys.path.insert(0, str(RECIPES / "VCTK"))
from demo import demo_overrides  # noqa: E402


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared mini VCTK and a tiny model, shared by the cases."""
    root = tmp_path_factory.mktemp("hostile")
    corpus = write_mini_vctk(
        str(root / "corpus"),
        n_speakers=12,
        utterances_per_speaker=4,
        duration_range=(0.6, 1.2),
        seed=5,
    )
    prepare_vctk(corpus, root / "prep", split_source="generate", seed=5)
    model = write_local_model(str(root / "model"), size="tiny", seed=5)
    return corpus, model, root / "prep"


def _copy_prep(prepared, tmp_path):
    prep = tmp_path / "prep"
    shutil.copytree(prepared[2], prep, symlinks=True)
    return prep


def _run(prepared, tmp_path, prep=None, **extra):
    corpus, model, shared_prep = prepared
    settings = {
        "batch_size": 4,
        "out_n_neurons": 8,
        "skip_prep": True,
        "prep_folder": prep or shared_prep,
        **extra,
    }
    argv = [
        str(YAML),
        *demo_overrides(corpus, model, str(tmp_path / "run"), 2, 1, **settings),
    ]
    return load_recipe_script().main(argv)


def test_mistyped_yaml_key(prepared, tmp_path):
    """An override of a key the yaml does not have names the key."""
    with pytest.raises(KeyError, match="batch_sise"):
        _run(prepared, tmp_path, batch_sise=8)


def test_missing_ssl_source_path(prepared, tmp_path):
    """A local model path that does not exist is not looked up on the hub."""
    with pytest.raises(FileNotFoundError, match="/no/such/model"):
        _run(prepared, tmp_path, ssl_source="/no/such/model")


def test_empty_training_split(prepared, tmp_path):
    """Training refuses to start on an empty manifest, naming it."""
    prep = _copy_prep(prepared, tmp_path)
    header = (prep / "train.csv").read_text().splitlines()[0]
    (prep / "train.csv").write_text(header + "\n")
    with pytest.raises(ValueError, match="train manifest .*train.csv"):
        _run(prepared, tmp_path, prep=prep)


def test_trials_naming_unknown_utterances(prepared, tmp_path):
    """A trial whose utterance is not in the manifest is named."""
    prep = _copy_prep(prepared, tmp_path)
    rows = read_csv(prep / "test_trials.csv")
    rows[0]["enrol"] = "p999_999"
    write_csv_atomic(prep / "test_trials.csv", rows, list(rows[0]))
    with pytest.raises(ValueError, match="p999_999"):
        _run(prepared, tmp_path, prep=prep)


def _rewrite_training_audio(prep, transform):
    """Applies ``transform(samples, rate) -> (samples, rate)`` to every
    training file, keeping its name."""
    for row in read_csv(prep / "train.csv"):
        path = pathlib.Path(row["wav"])
        assert prep in path.parents, "rewrite the copy, not the original"
        samples, rate = soundfile.read(path)
        samples, rate = transform(samples, rate)
        soundfile.write(path, samples, rate)


def _point_manifests_at(prep, original):
    for name in ("train.csv", "valid.csv", "test.csv"):
        text = (prep / name).read_text()
        (prep / name).write_text(text.replace(str(original), str(prep)))


def test_wrong_sample_rate_names_the_file(prepared, tmp_path):
    """A training file at another rate stops the run with its name."""
    prep = _copy_prep(prepared, tmp_path)
    _point_manifests_at(prep, prepared[2])
    _rewrite_training_audio(prep, lambda x, rate: (x[::2], rate // 2))
    with pytest.raises(ValueError, match=r"wav: sample rate 8000 Hz"):
        _run(prepared, tmp_path, prep=prep)


def test_stereo_and_short_files_train(prepared, tmp_path):
    """Stereo files are down-mixed; files shorter than the crop are
    wrap-padded (the default) or padded in the batch and masked by their
    lengths."""
    prep = _copy_prep(prepared, tmp_path)
    _point_manifests_at(prep, prepared[2])
    _rewrite_training_audio(
        prep, lambda x, rate: (np.stack([x, 0.5 * x], axis=1), rate)
    )
    for crop_padding in ("wrap", "pad"):
        brain = _run(
            prepared,
            tmp_path / crop_padding,
            prep=prep,
            crop_seconds=5.0,
            crop_padding=crop_padding,
        )
        assert np.isfinite(brain.test_results["EER"])
