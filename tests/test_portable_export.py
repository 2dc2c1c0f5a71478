"""Portable pretrained folders, loaded where they were not made.

The export of the session's ``trained_vctk_run`` (a tiny local wav2vec2)
must load after a move with the run and the SSL model deleted, hold no
path of the training machine, and load with stock SpeechBrain's
``foreign_class`` in a Python where ``unipool_lobes`` cannot be imported,
by the model card's own snippet.
"""

import json
import os
import re
import shutil
import sys
import sysconfig

import processes
import pytest
import torch

from data_prep.common import read_csv
from unipool_lobes.frontends.ssl import MultiLayerSSL
from unipool_lobes.inference.bundle import BUNDLE_FILE
from unipool_lobes.inference.cli import main
from unipool_lobes.inference.export import (
    best_checkpoint,
    export_pretrained,
    pretrained_hparams_yaml,
    training_cwd,
)
from unipool_lobes.inference.model_card import EXAMPLE_FILES
from unipool_lobes.inference.portable import portable_front_end
from unipool_lobes.inference.pretrained_yaml import round_trip_yaml
from unipool_lobes.inference.speaker import SpeakerVerifier

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs before the card's snippet in the stock Python: unipool_lobes must
# not be importable, and what SpeechBrain itself imports is noted.
BEFORE_SNIPPET = """
import importlib.util
import sys

assert importlib.util.find_spec("unipool_lobes") is None, "importable"
import speechbrain.inference.interfaces
import speechbrain.inference.speaker

_HEAVY = ("sklearn", "scipy", "matplotlib", "data_prep")
_before = {m for m in sys.modules if m.split(".")[0] in _HEAVY}
"""

AFTER_SNIPPET = """
_added = {m for m in sys.modules if m.split(".")[0] in _HEAVY} - _before
print("ADDED", sorted(_added))
_loader = sys.modules["unipool_lobes"].__spec__.loader
print("LOADER", type(_loader).__name__)
"""

SCORE_LINE = re.compile(r"^(\S+) score: (-?\d+\.\d+) same speaker: (\w+)$")


def _ssl_source(run):
    """The local SSL model folder a run's yaml names (SpeechBrain's dump
    puts a long value on the next line)."""
    text = (run / "hyperparams.yaml").read_text()
    found = re.search(r"^ssl_source:[ \t]*(?:\n[ \t]+)?(\S+)", text, re.M)
    return found.group(1)


@pytest.fixture(scope="module")
def example_wavs(trained_vctk_run):
    """Three test files: two of one speaker, one of another."""
    rows = read_csv(trained_vctk_run / "data" / "test.csv")
    first = [row["wav"] for row in rows if row["spk_id"] == rows[0]["spk_id"]]
    other = next(
        row["wav"] for row in rows if row["spk_id"] != rows[0]["spk_id"]
    )
    return [first[0], first[1], other]


@pytest.fixture(scope="module")
def deployed(trained_vctk_run, example_wavs, tmp_path_factory):
    """The run exported, then copied (cp -r) next to the card's files."""
    exported = export_pretrained(
        trained_vctk_run, tmp_path_factory.mktemp("made") / "unipool-vctk"
    )
    deploy = tmp_path_factory.mktemp("deploy")
    shutil.copytree(exported, deploy / exported.name)
    for name, wav in zip(EXAMPLE_FILES, example_wavs, strict=True):
        shutil.copyfile(wav, deploy / name)
    return deploy / exported.name


@pytest.fixture(scope="module")
def stock_python(tmp_path_factory):
    """A Python with torch, speechbrain and transformers, not unipool_lobes.

    A venv without pip whose ``.pth`` lists this venv's site-packages: the
    ``.pth`` files inside a folder added so are not processed, so the
    editable install's finder of unipool_lobes is not active.
    """
    env = tmp_path_factory.mktemp("stock") / "env"
    processes.run(
        [sys.executable, "-m", "venv", "--without-pip", str(env)],
        120,
        check=True,
    )
    python = env / "bin" / "python"
    site = processes.run(
        [
            str(python),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        60,
        check=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    with open(os.path.join(site, "main_venv.pth"), "w") as pth:
        pth.write("\n".join(sorted(ours)) + "\n")
    return python


def test_moved_folder_loads_without_the_run_or_the_ssl_model(
    trained_vctk_run, example_wavs, tmp_path
):
    """cp -r and mv, then the run and the SSL model deleted: both copies
    load and embed as before, and their front-end gives the SSL model's own
    features (before: the yaml named the SSL folder's absolute path, so
    loading failed once it was gone; a front-end left with the random
    weights of its inline config would change the features)."""
    ssl = tmp_path / "ssl_model"
    shutil.copytree(_ssl_source(trained_vctk_run), ssl)
    run = tmp_path / "run"
    shutil.copytree(
        trained_vctk_run, run, ignore=shutil.ignore_patterns("data")
    )
    yaml_path = run / "hyperparams.yaml"
    yaml_path.write_text(
        yaml_path.read_text().replace(_ssl_source(trained_vctk_run), str(ssl))
    )
    made = export_pretrained(run, tmp_path / "machine" / "model")
    before = SpeakerVerifier.from_hparams(made).encode_files(
        example_wavs, progress=False
    )
    wav = torch.randn(2, 12000)
    reference, _ = MultiLayerSSL(str(ssl)).eval()(wav)

    copied = tmp_path / "copy" / "model"
    shutil.copytree(made, copied)
    moved = tmp_path / "elsewhere" / "deploy" / "model"
    moved.parent.mkdir(parents=True)
    shutil.move(made, moved)
    for gone in (run, ssl, tmp_path / "machine"):
        shutil.rmtree(gone)

    for folder in (copied, moved):
        loaded = SpeakerVerifier.from_hparams(folder)
        after = loaded.encode_files(example_wavs, progress=False)
        torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
        features, _ = loaded.mods.front_end(wav)
        torch.testing.assert_close(features, reference, rtol=0, atol=1e-6)


def test_no_file_holds_a_path_of_the_training_machine(
    trained_vctk_run, deployed, tmp_path_factory
):
    """Every file, read as bytes, holds none of the run's, the SSL model's,
    the temporary folders' or the repository's paths (before: the yaml,
    export.json and README.md named the run and the SSL folder)."""
    needles = {
        str(trained_vctk_run),
        str(trained_vctk_run.resolve()),
        _ssl_source(trained_vctk_run),
        str(tmp_path_factory.getbasetemp()),
        str(tmp_path_factory.getbasetemp().resolve()),
        REPO,
    }
    names = sorted(path.name for path in deployed.iterdir())
    assert {"front_end.ckpt", BUNDLE_FILE} <= set(names)
    for path in deployed.iterdir():
        data = path.read_bytes()
        for needle in needles:
            assert needle.encode() not in data, (path.name, needle)
    info = json.loads((deployed / "export.json").read_text())
    assert info["run_folder"] == trained_vctk_run.name
    assert info["ssl_weights"] == "front_end.ckpt"
    assert BUNDLE_FILE in info["files"]


def test_stock_speechbrain_runs_the_card_without_unipool_lobes(
    deployed, example_wavs, stock_python
):
    """The card's snippets, run exactly as written in a Python where
    unipool_lobes cannot be imported, load the folder with foreign_class
    and give our from_hparams scores; the bundle imports no scikit-learn,
    SciPy, matplotlib or data_prep beyond what SpeechBrain itself does
    (before: the folder needed unipool-sv installed)."""
    card = (deployed / "README.md").read_text()
    assert card.startswith("---\n") and "foreign_class(" in card
    snippet = "".join(
        block.split("```")[0] for block in card.split("```python\n")[1:]
    )
    assert f'source="{deployed.name}"' in snippet
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    done = processes.run(
        [str(stock_python), "-c", BEFORE_SNIPPET + snippet + AFTER_SNIPPET],
        240,
        env=env,
        cwd=deployed.parent,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    lines = done.stdout.splitlines()
    assert "ADDED []" in lines and "LOADER _BundledModules" in lines
    verifier = SpeakerVerifier.from_hparams(deployed)
    width = verifier.encode_files(example_wavs[:1], progress=False).shape[-1]
    assert f"(1, 1, {width})" in lines
    scores = [SCORE_LINE.match(line) for line in lines]
    scores = [match.groups() for match in scores if match]
    assert [name for name, _, _ in scores] == list(EXAMPLE_FILES[1:])
    for (_, score, same), wav in zip(scores, example_wavs[1:], strict=True):
        expected, decision = verifier.verify_files(example_wavs[0], wav)
        assert float(score) == pytest.approx(float(expected), abs=1e-5)
        assert same == str(bool(decision))


def test_folders_naming_a_source_still_load(
    trained_vctk_run, deployed, example_wavs, tmp_path
):
    """A folder as exported before (front_end with ``source:``, no
    front_end.ckpt, no bundle) loads and embeds as the portable one (the
    inline config builds the same model: overrides, normalisation and
    sample rate kept)."""
    old = tmp_path / "old"
    shutil.copytree(deployed, old)
    for name in ("front_end.ckpt", BUNDLE_FILE):
        (old / name).unlink()
    info = json.loads((old / "export.json").read_text())
    del info["files"]
    (old / "export.json").write_text(json.dumps(info))
    run_text = (trained_vctk_run / "hyperparams.yaml").read_text()
    (old / "hyperparams.yaml").write_text(
        pretrained_hparams_yaml(
            run_text,
            threshold=info["threshold"],
            training_cwd=training_cwd(trained_vctk_run, ""),
        )
    )
    assert "source:" in (old / "hyperparams.yaml").read_text()
    torch.testing.assert_close(
        SpeakerVerifier.from_hparams(old).encode_files(
            example_wavs, progress=False
        ),
        SpeakerVerifier.from_hparams(deployed).encode_files(
            example_wavs, progress=False
        ),
        rtol=0,
        atol=1e-6,
    )


def test_a_changed_bundle_is_refused(deployed, tmp_path):
    """The one-file interface is checked against export.json like the
    checkpoints (before: not part of the folder)."""
    changed = tmp_path / "changed"
    shutil.copytree(deployed, changed)
    with open(changed / BUNDLE_FILE, "a") as bundle:
        bundle.write("\nprint('changed')\n")
    with pytest.raises(Exception, match=BUNDLE_FILE):
        SpeakerVerifier.from_hparams(changed)


def test_ssl_from_hub_keeps_a_hub_id_only(trained_vctk_run, tmp_path, capsys):
    """--ssl-from-hub keeps a frozen hub model's id (no save_path, no
    config, no front_end.ckpt: the export of a run naming a hub id, made
    offline), and is refused, exit 2 and nothing written, for a local SSL
    folder or a fine-tuned model (before: the flag did not exist)."""
    definition = round_trip_yaml().load(
        "front_end: !new:unipool_lobes.frontends.ssl.MultiLayerSSL\n"
        "    source: facebook/wav2vec2-base\n"
        "    save_path: /home/someone/cache\n"
        "    num_layers: 6\n"
    )["front_end"]
    kept, embedded, record = portable_front_end(definition, ssl_from_hub=True)
    assert dict(kept) == {"source": "facebook/wav2vec2-base", "num_layers": 6}
    assert not embedded and record["ssl_weights"] == "hub"
    with pytest.raises(ValueError, match="fine-tuned"):
        portable_front_end(definition, fine_tuned=True, ssl_from_hub=True)

    run = tmp_path / "run"
    shutil.copytree(
        trained_vctk_run, run, ignore=shutil.ignore_patterns("data")
    )
    yaml_path = run / "hyperparams.yaml"
    yaml_path.write_text(
        yaml_path.read_text().replace(
            _ssl_source(trained_vctk_run), "facebook/wav2vec2-base"
        )
    )
    hub = export_pretrained(run, tmp_path / "hub", ssl_from_hub=True)
    hub_yaml = (hub / "hyperparams.yaml").read_text()
    front_end = round_trip_yaml().load(hub_yaml)["front_end"]
    assert front_end["source"] == "facebook/wav2vec2-base"
    assert "save_path" not in front_end and "config" not in front_end
    assert not (hub / "front_end.ckpt").exists()
    info = json.loads((hub / "export.json").read_text())
    assert info["ssl_weights"] == "hub" and not info["front_end_embedded"]

    out = tmp_path / "m"
    code = main(["export", str(trained_vctk_run), str(out), "--ssl-from-hub"])
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2, message
    assert "--ssl-from-hub" in message and "local folder" in message
    assert not out.exists()


def test_fine_tuned_front_end_with_a_frozen_phase_loads(
    trained_vctk_run, example_wavs, tmp_path
):
    """A run fine-tuning after ``frozen_steps`` (ExploreWV2) exports a
    frozen front-end with its fine-tuned weights, without the step counter
    (before: ``freeze: True`` with ``frozen_steps`` was refused at load, and
    the checkpoint's ``training_forwards`` was an unexpected key)."""
    run = tmp_path / "run"
    shutil.copytree(
        trained_vctk_run, run, ignore=shutil.ignore_patterns("data")
    )
    yaml_path = run / "hyperparams.yaml"
    text = yaml_path.read_text()
    assert "  freeze: true\n" in text
    yaml_path.write_text(
        text.replace("  freeze: true\n", "  freeze: false\n  frozen_steps: 2\n")
    )
    checkpoint, _ = best_checkpoint(run)
    fine_tuned = MultiLayerSSL(_ssl_source(trained_vctk_run)).state_dict()
    fine_tuned = {
        key: value + 0.01 if value.is_floating_point() else value
        for key, value in fine_tuned.items()
    }
    torch.save(
        {**fine_tuned, "training_forwards": torch.tensor(5)},
        checkpoint / "front_end.ckpt",
    )
    out = export_pretrained(run, tmp_path / "model")
    assert "frozen_steps" not in (out / "hyperparams.yaml").read_text()
    loaded = SpeakerVerifier.from_hparams(out)
    state = loaded.mods.front_end.state_dict()
    assert state.keys() == fine_tuned.keys()
    for key, value in fine_tuned.items():
        assert torch.equal(state[key], value), key
    loaded.encode_files(example_wavs[:1], progress=False)
