"""Every hparams file of the recipes loads its keys into use.

As in SpeechBrain's own consistency tests, a top-level yaml key must be
referenced elsewhere in the yaml (``<key>``), read by the training script
(``hparams["key"]`` or ``hparams.key``), or be one of SpeechBrain's run
options. An unused key is an experiment setting that silently does nothing.
"""

import dataclasses
import pathlib
import re

import pytest
from speechbrain.utils.run_opts import RunOptions

ROOT = pathlib.Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
YAMLS = sorted(RECIPES.glob("*/hparams/*.yaml"))
TOP_LEVEL_KEY = re.compile(r"^([A-Za-z_]\w*):", re.MULTILINE)


# The recipe script's Brain base class reads hyperparameters too (the
# generic machinery: schedules, margin ramps, the classifier's weight decay).
BRAIN_BASE = ROOT / "unipool_lobes" / "training" / "brain.py"


def _script_text():
    scripts = [p for p in RECIPES.rglob("*.py") if not p.is_symlink()]
    return "\n".join(
        p.read_text(encoding="utf-8") for p in [*scripts, BRAIN_BASE]
    )


def test_recipes_have_yamls():
    """The recipes folder holds hparams files (so the test below runs)."""
    assert YAMLS


@pytest.mark.parametrize("yaml_path", YAMLS, ids=lambda p: p.name)
def test_every_yaml_key_is_used(yaml_path):
    """No top-level key of a recipe yaml is left unused."""
    text = yaml_path.read_text(encoding="utf-8")
    script = _script_text()
    run_options = {f.name for f in dataclasses.fields(RunOptions)}
    unused = []
    for key in TOP_LEVEL_KEY.findall(text):
        if key.startswith("__") or key in run_options:
            continue
        in_yaml = f"<{key}>" in text
        in_script = re.search(
            rf"hparams(\.{key}\b|\[\"{key}\"\])|hparams\.get\(\"{key}\"",
            script,
        )
        if not (in_yaml or in_script):
            unused.append(key)
    assert not unused, f"{yaml_path}: unused keys {unused}"


@pytest.mark.parametrize("yaml_path", YAMLS, ids=lambda p: p.name)
def test_recipe_folder_has_train_script(yaml_path):
    """Each recipe folder runs the shared script as ``train.py``."""
    train = yaml_path.parents[1] / "train.py"
    assert train.resolve() == RECIPES / "train_speaker_embeddings.py"
