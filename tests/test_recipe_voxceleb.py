"""The VoxCeleb recipes end to end on a generated mini corpus.

The vox1 setting: prepare (VoxCeleb1 in SpeechBrain's layout, the VoxCeleb2
test speakers in the authors' layout, trimmed copies of the published
lists) -> train a few steps with a tiny local wav2vec2 -> validate on the
drawn VoxCeleb2 list (EER picks the checkpoint) -> test on Vox1-O -> scores
file and results JSON, through the same ``train.py`` and
``hparams/unipool_vox1.yaml`` as the paper's experiment, changed by
command-line overrides only. The vox2 yaml is loaded and its preparation
run on the same corpus.
"""

import json
import pathlib
import re
import sys

import processes
import pytest
from hyperpyyaml import load_hyperpyyaml
from mini_voxceleb_setup import GROUPS, write_corpus_and_lists

from data_prep.common import read_csv
from data_prep.trials import read_trials, read_voxceleb_trials
from unipool_lobes.frontends.local_models import write_local_model

RECIPE = pathlib.Path(__file__).resolve().parents[1] / "recipes/VoxCeleb"
PAPER = (
    pathlib.Path(__file__).resolve().parents[2]
    / "shared/data/paper_splits/VoxCeleb/preprocess"
)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two VoxCeleb roots, trimmed lists and a tiny local wav2vec2."""
    root = tmp_path_factory.mktemp("voxceleb_recipe")
    data_folders, lists = write_corpus_and_lists(root)
    model = write_local_model(
        root / "tiny-wav2vec2", family="wav2vec2", size="tiny", seed=3
    )
    return data_folders, lists, model


def _overrides(inputs, output_folder, n_train_speakers):
    """The paper's yaml turned into a tiny CPU run on the mini corpus."""
    data_folder, lists, model = inputs
    settings = {
        "data_folder": data_folder,
        "output_folder": output_folder,
        "prep_folder": f"{output_folder}/data",
        "paper_lists": lists,
        "n_vox2_trials_per_class": 20,
        "prep_num_workers": 1,
        "ssl_source": model,
        "ssl_cache": f"{output_folder}/ssl_cache",
        "ssl_hidden_size": 32,
        "ssl_num_layers": 2,
        "out_n_neurons": n_train_speakers,
        "number_of_steps": 4,
        "valid_interval_steps": 2,
        "batch_size": 8,
        "eval_batch_size": 8,
        "crop_seconds": 1.0,
        "num_workers": 0,
        "device": "cpu",
    }
    return [f"--{key}={value}" for key, value in settings.items()]


def test_vox1_recipe_end_to_end(inputs, tmp_path):
    """Training writes the selected checkpoint, scores and results."""
    out = tmp_path / "run"
    command = [
        sys.executable,
        "train.py",
        "hparams/unipool_vox1.yaml",
        *_overrides(inputs, out, len(GROUPS["vox1-dev"])),
    ]
    processes.run(command, 300, check=True, cwd=RECIPE)

    train = read_csv(out / "data/train.csv")
    assert {row["spk_id"] for row in train} == set(GROUPS["vox1-dev"])
    assert len(train) == 6 * 2 * 2
    valid = read_csv(out / "data/valid.csv")
    assert {row["spk_id"] for row in valid} == set(GROUPS["vox2-test"])
    assert all("/vox2_test_wav/" in row["wav"] for row in valid)

    log = (out / "train_log.txt").read_text()
    assert log.count("valid EER") == 2, log
    assert "test EER" in log
    checkpoints = list((out / "save").glob("CKPT+*"))
    assert len(checkpoints) == 1, "only the best-EER checkpoint is kept"
    assert "EER" in (checkpoints[0] / "CKPT.yaml").read_text()

    # Tested on the Vox1-O list of the (trimmed) published lists.
    trials = read_trials(str(out / "data/test_trials.csv"))
    data_folder = inputs[0].split(",")[0]
    official = read_voxceleb_trials(f"{data_folder}/veri_test2.txt")
    assert trials["enrol"] == [t["enrol"] for t in official]
    results = json.loads((out / "results.json").read_text())
    assert results["n_trials"] == len(official)
    assert 0.0 <= results["EER"] <= 1.0
    assert results["corpus"] == "VoxCeleb"
    score_lines = (out / "scores.txt").read_text().splitlines()
    assert len(score_lines) == len(official)
    enrol, test, label, score = score_lines[0].split()
    assert (enrol, test) == (trials["enrol"][0], trials["test"][0])
    float(score)


def test_vox2_yaml_prepares_its_setting(inputs, tmp_path):
    """The vox2 yaml loads and prepares: VoxCeleb2 dev trains, Vox1-O
    validates, the drawn VoxCeleb2 list tests."""
    overrides = _overrides(inputs, tmp_path / "run", 3)
    overrides = "\n".join(
        item[2:].replace("=", ": ", 1)
        for item in overrides
        if not item.startswith("--device")
    )
    with open(RECIPE / "hparams/unipool_vox2.yaml") as source:
        hparams = load_hyperpyyaml(source, overrides)
    hparams["prepare_data"]()
    train = read_csv(hparams["train_annotation"])
    assert {row["spk_id"] for row in train} == set(GROUPS["vox2-dev"])
    valid = read_csv(hparams["valid_annotation"])
    assert {row["spk_id"] for row in valid} == set(GROUPS["vox1-test"])
    test = read_trials(hparams["test_trials"])
    assert {u.split("--")[0] for u in test["enrol"] + test["test"]} == set(
        GROUPS["vox2-test"]
    )


@pytest.mark.skipif(not PAPER.is_dir(), reason="no published lists")
@pytest.mark.parametrize("setting", ["vox1", "vox2"])
def test_yaml_speaker_count_is_the_published_lists(setting):
    """out_n_neurons is the number of training speakers of the setting."""
    text = (RECIPE / f"hparams/unipool_{setting}.yaml").read_text()
    n_classes = int(re.search(r"^out_n_neurons: (\d+)$", text, re.M)[1])
    assert re.search(rf"^setting: {setting}$", text, re.M)
    listed = read_csv(PAPER / f"speakers/speaker-{setting}-dev.csv")
    assert n_classes == len(listed)
