"""The shared recipe script, loaded as a module for in-process tests."""

import importlib.util
import pathlib

SCRIPT = (
    pathlib.Path(__file__).resolve().parents[1]
    / "recipes"
    / "train_speaker_embeddings.py"
)


def load_recipe_script():
    """Executes ``recipes/train_speaker_embeddings.py`` as a fresh module.

    Returns
    -------
    module
        Its ``main``, ``dataio_prep``, ``SpeakerBrain``...
    """
    spec = importlib.util.spec_from_file_location(
        "train_speaker_embeddings", SCRIPT
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
