"""Export of a trained run and the SpeakerVerifier interface.

The run is the session's ``trained_vctk_run`` (the VCTK recipe, a few
steps on a mini corpus with a tiny local wav2vec2).
"""

import json
import os
import pathlib
import re
import shutil
import sys
import warnings

import numpy as np
import processes
import pytest
import soundfile
import torch
import torch.nn.functional as F
import torchaudio

from data_prep.common import read_csv
from unipool_lobes.inference.export import (
    best_checkpoint,
    ensure_pretrained,
    export_pretrained,
    pretrained_hparams_yaml,
    training_cwd,
)
from unipool_lobes.inference.model_card import EXAMPLE_FILES
from unipool_lobes.inference.speaker import (
    AudioInputError,
    CheckpointMismatchError,
    SpeakerVerifier,
)

# Blocks every connection of the process it runs in: proves no hub lookup.
NO_NETWORK = """
import socket
def _refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = _refuse
socket.create_connection = _refuse
"""


@pytest.fixture(scope="module")
def exported(trained_vctk_run, tmp_path_factory):
    """The run exported to a pretrained folder."""
    out = tmp_path_factory.mktemp("export") / "pretrained"
    return export_pretrained(trained_vctk_run, out)


@pytest.fixture(scope="module")
def verifier(exported):
    """The exported folder loaded on the CPU."""
    return SpeakerVerifier.from_hparams(exported, run_opts={"device": "cpu"})


@pytest.fixture(scope="module")
def test_wavs(trained_vctk_run):
    """The 16 kHz files of the run's test manifest."""
    rows = read_csv(trained_vctk_run / "data" / "test.csv")
    return [row["wav"] for row in rows]


def _offline_env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("HF_HOME", None)
    return env


def test_export_writes_a_pretrained_folder(trained_vctk_run, exported):
    """The files, the calibrated threshold and the card come from the run."""
    names = {path.name for path in exported.iterdir()}
    assert {
        "hyperparams.yaml",
        "embedding_model.ckpt",
        "classifier.ckpt",
        "label_encoder.txt",
        "README.md",
        "export.json",
        "front_end.ckpt",
        "unipool_speaker.py",
    } <= names, "a frozen SSL model is embedded, with a one-file interface"

    checkpoint, meta = best_checkpoint(trained_vctk_run)
    info = json.loads((exported / "export.json").read_text())
    assert info["checkpoint"] == checkpoint.name
    assert info["threshold"] == pytest.approx(meta["EER_threshold"])
    assert info["ssl_source"] == "tiny-wav2vec2", "the folder's name only"
    assert info["ssl_weights"] == "front_end.ckpt"
    assert torch.equal(
        torch.load(exported / "embedding_model.ckpt")["embedding.weight"],
        torch.load(checkpoint / "embedding_model.ckpt")["embedding.weight"],
    )
    results = json.loads((trained_vctk_run / "results.json").read_text())
    card = (exported / "README.md").read_text()
    assert f"{results['EER_percent']:.2f}" in card
    assert f'source="{exported.name}"' in card
    assert str(exported) not in card, "no path of the training machine"

    yamllint = pathlib.Path(sys.executable).parent / "yamllint"
    config = pathlib.Path(__file__).resolve().parents[1] / ".yamllint.yaml"
    lint = processes.run(
        [str(yamllint), "--strict", "-c", str(config), "hyperparams.yaml"],
        60,
        cwd=exported,
    )
    assert lint.returncode == 0, lint.stdout

    with pytest.raises(FileExistsError, match="overwrite"):
        export_pretrained(trained_vctk_run, exported)
    leftovers = [p for p in exported.parent.iterdir() if p.name.startswith(".")]
    assert not leftovers, "the staging folder and the lock are removed"


def test_best_checkpoint_skips_intra_epoch(tmp_path):
    """Lowest EER wins; checkpoints without an EER are ignored."""
    for name, meta in [
        ("CKPT+1", "EER: 20.0\n"),
        ("CKPT+2", "EER: 10.5\nEER_threshold: 0.3\n"),
        ("CKPT+3", "INTRA_EPOCH: true\n"),
    ]:
        (tmp_path / "save" / name).mkdir(parents=True)
        (tmp_path / "save" / name / "CKPT.yaml").write_text(meta)
    folder, meta = best_checkpoint(tmp_path)
    assert folder.name == "CKPT+2" and meta["EER_threshold"] == 0.3
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="EER"):
        best_checkpoint(empty)


def test_model_card_snippet_runs_offline_in_a_new_process(exported, test_wavs):
    """The README's python blocks load the folder with no network, with
    unipool-sv installed (its one-file interface then uses the installed
    package; tests/test_portable_export.py runs them without it)."""
    card = (exported / "README.md").read_text()
    snippet = "".join(
        block.split("```")[0] for block in card.split("```python\n")[1:]
    )
    for name, wav in zip(EXAMPLE_FILES, test_wavs, strict=False):
        shutil.copyfile(wav, exported.parent / name)
    run = processes.run(
        [sys.executable, "-c", NO_NETWORK + snippet],
        120,
        env=_offline_env(),
        cwd=exported.parent,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert run.stdout.count("same speaker:") == 2
    assert "(1, 1, 192)" in run.stdout


def test_batched_equals_one_by_one(verifier, test_wavs):
    """Lengths reach the SSL model: padding changes no embedding."""
    paths = test_wavs[:6]
    batched = verifier.encode_files(paths, batch_size=4, progress=False)
    singles = torch.cat(
        [verifier.encode_batch(verifier.read_audio(p)) for p in paths]
    ).squeeze(1)
    assert len({verifier.read_audio(p).shape[0] for p in paths}) > 1
    assert torch.allclose(batched, singles, atol=1e-5)

    reversed_order = verifier.encode_files(paths[::-1], progress=False)
    assert torch.allclose(reversed_order, batched.flip(0), atol=1e-5)

    signals = [verifier.read_audio(p) for p in paths[:3]]
    longest = max(s.shape[0] for s in signals)
    padded = torch.stack([F.pad(s, (0, longest - s.shape[0])) for s in signals])
    lens = torch.tensor([s.shape[0] / longest for s in signals])
    manual = verifier.encode_batch(padded, lens).squeeze(1)
    assert torch.allclose(manual, singles[:3], atol=1e-5)
    unmasked = verifier.encode_batch(padded).squeeze(1)
    assert not torch.allclose(unmasked, singles[:3], atol=1e-5)


def test_verify_files_resamples_and_downmixes(verifier, test_wavs, tmp_path):
    """A 48 kHz stereo copy scores like the 16 kHz original."""
    original, rate = soundfile.read(test_wavs[0], dtype="float32")
    assert rate == 16000
    upsampled = torchaudio.functional.resample(
        torch.from_numpy(original), 16000, 48000
    )
    # Average-to-mono of (1.5 x, 0.5 x) is x; keeping a channel would not be.
    stereo = torch.stack([1.5 * upsampled, 0.5 * upsampled], dim=1)
    copy = tmp_path / "copy_48k_stereo.wav"
    soundfile.write(copy, stereo.numpy(), 48000)

    loaded = verifier.load_audio(copy)
    assert loaded.dim() == 1 and loaded.shape[0] == original.shape[0]
    assert np.abs(loaded.numpy() - original).max() < 0.02

    score, decision = verifier.verify_files(test_wavs[0], copy)
    assert score.shape == (1,) and bool(decision) == bool(
        score > verifier.threshold
    )
    reference = verifier.encode_batch(torch.from_numpy(original)).squeeze()
    converted = verifier.encode_batch(loaded).squeeze()
    others = verifier.encode_files(test_wavs[1:], progress=False)
    gap_to_others = (others - reference).norm(dim=1).min()
    assert (converted - reference).norm() < 0.2 * gap_to_others


def test_verify_embeddings_and_threshold(verifier, test_wavs):
    """Precomputed embeddings score as verify_batch; threshold defaults."""
    signal1 = verifier.read_audio(test_wavs[0])
    signal2 = verifier.read_audio(test_wavs[5])
    score, decision = verifier.verify_batch(signal1, signal2)
    embeddings = verifier.encode_files(test_wavs[:6], progress=False)
    from_embeddings, same = verifier.verify_embeddings(
        embeddings[0].numpy(), embeddings[5].numpy()
    )
    assert float(from_embeddings) == pytest.approx(float(score), abs=1e-5)
    expected = F.cosine_similarity(embeddings[0], embeddings[5], dim=0)
    assert float(from_embeddings) == pytest.approx(float(expected), abs=1e-5)
    assert bool(decision) == (float(score) > verifier.threshold)
    _, low = verifier.verify_batch(signal1, signal2, threshold=-1.0)
    _, high = verifier.verify_batch(signal1, signal2, threshold=1.0)
    assert bool(low) and not bool(high)


def test_layer_weights_per_file(verifier, test_wavs):
    """UniPool's attention: mean over heads and valid frames, per file."""
    paths = test_wavs[:4]
    embeddings, weights = verifier.encode_files(
        paths, batch_size=4, progress=False, return_layer_weights=True
    )
    assert weights.shape == (4, 2)
    assert torch.allclose(
        embeddings, verifier.encode_files(paths, progress=False), atol=1e-6
    )
    backend = verifier.mods.embedding_model
    signal = verifier.read_audio(paths[2])
    with torch.no_grad(), backend.keeping_attention():
        feats, lens = verifier.mods.front_end(signal.unsqueeze(0))
        backend(feats, lens)
    expected = backend.layer_attention_weights[0].mean(dim=(0, 2))
    assert torch.allclose(weights[2], expected, atol=1e-5)


def test_classify_file_uses_the_label_encoder(verifier, test_wavs):
    """The exported classifier and label encoder work."""
    _, _, index, labels = verifier.classify_file(test_wavs[0])
    training_speakers = set(verifier.hparams.label_encoder.lab2ind)
    assert len(training_speakers) == 16 and labels[0] in training_speakers


def _with_old_module_paths(text):
    """The hyperparams of an export made before the layout by role."""
    from unipool_lobes._moved import MOVED_MODULES, PACKAGE_MODULES

    text = text.replace(
        "unipool_lobes.models.unipool.UniPool", "unipool_lobes.unipool.UniPool"
    )
    pairs = sorted(MOVED_MODULES.items(), key=lambda p: -len(p[1]))
    pairs.append(
        ("unipool_lobes.unipool_masking", "unipool_lobes.nnet.masking")
    )
    pairs.append(
        ("unipool_lobes.unipool_masking", "unipool_lobes.training.batch_norm")
    )
    pairs += sorted(PACKAGE_MODULES.items())
    for old, new in pairs:
        text = text.replace(f"{new}.", f"{old}.")
    return text


def test_folder_exported_before_the_layout_still_loads(
    exported, verifier, test_wavs, tmp_path
):
    """Old folders name old paths (``unipool_lobes.inference.
    load_state_dict_strict``, ``unipool_lobes.unipool.UniPool``): they load
    and embed as the new folder does (the warnings: tests/test_layout.py)."""
    old = tmp_path / "old_export"
    shutil.copytree(exported, old)
    _forget_checksums(old)
    yaml_path = old / "hyperparams.yaml"
    text = _with_old_module_paths(yaml_path.read_text())
    assert "!name:unipool_lobes.inference.load_state_dict_strict" in text
    assert "unipool_lobes.unipool.UniPool" in text
    assert not re.search(r"unipool_lobes\.(models|frontends|training)\.", text)
    yaml_path.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = SpeakerVerifier.from_hparams(old, run_opts={"device": "cpu"})
    torch.testing.assert_close(
        loaded.encode_files(test_wavs[:2], progress=False),
        verifier.encode_files(test_wavs[:2], progress=False),
    )


def test_strict_loading_names_the_keys(exported, tmp_path):
    """A checkpoint that does not fit is an error naming its keys."""
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    _forget_checksums(broken)  # as a folder written by hand
    state = torch.load(broken / "embedding_model.ckpt")
    state["surplus.weight"] = state.pop("embedding.weight")
    torch.save(state, broken / "embedding_model.ckpt")
    with pytest.raises(CheckpointMismatchError) as error:
        SpeakerVerifier.from_hparams(broken)
    message = str(error.value)
    assert "embedding_model.ckpt" in message
    assert "missing keys: embedding.weight" in message
    assert "unexpected keys: surplus.weight" in message

    resized = tmp_path / "resized"
    shutil.copytree(exported, resized)
    _forget_checksums(resized)
    yaml_path = resized / "hyperparams.yaml"
    yaml_path.write_text(
        yaml_path.read_text().replace("lin_neurons: 192", "lin_neurons: 96")
    )
    with pytest.raises(CheckpointMismatchError, match="shape mismatches"):
        SpeakerVerifier.from_hparams(resized)

    (resized / "embedding_model.ckpt").unlink()
    with pytest.raises(FileNotFoundError, match="embedding_model.ckpt"):
        SpeakerVerifier.from_hparams(resized)


def _forget_checksums(folder):
    """Drops the file checksums of an export record."""
    info_path = folder / "export.json"
    info = json.loads(info_path.read_text())
    del info["files"]
    info_path.write_text(json.dumps(info))


def test_missing_folder_is_never_a_hub_lookup():
    """A missing folder, even one shaped like a hub id, names itself."""
    for source in ("no/such/folder", "speechbrain/spkrec-ecapa-voxceleb"):
        with pytest.raises(FileNotFoundError, match=source):
            SpeakerVerifier.from_hparams(source)


def test_bad_audio_is_a_clear_error(verifier, tmp_path):
    """Missing, unreadable, empty and too-short files name themselves."""
    with pytest.raises(FileNotFoundError, match="nowhere.wav"):
        verifier.load_audio(tmp_path / "nowhere.wav")
    text = tmp_path / "text.wav"
    text.write_text("not audio")
    with pytest.raises(AudioInputError, match="cannot read.*text.wav"):
        verifier.load_audio(text)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype="float32"), 16000)
    with pytest.raises(AudioInputError, match="empty.wav.*empty"):
        verifier.verify_files(empty, empty)
    assert verifier.min_samples == 400
    short = tmp_path / "short.wav"
    soundfile.write(short, np.random.randn(399).astype("float32"), 16000)
    with pytest.raises(
        AudioInputError, match=r"short.wav.*400 samples \(25 ms"
    ):
        verifier.encode_files([short], progress=False)
    with pytest.raises(AudioInputError, match="at least 400"):
        verifier.encode_batch(torch.randn(2, 800), torch.tensor([1.0, 0.4]))
    enough = verifier.encode_batch(torch.randn(400))
    assert enough.shape == (1, 1, 192)


def test_fine_tuned_front_end_is_embedded(trained_vctk_run, tmp_path):
    """A run with front_end.ckpt exports it, and loading uses it."""
    run = tmp_path / "run"
    shutil.copytree(
        trained_vctk_run, run, ignore=shutil.ignore_patterns("data")
    )
    checkpoint, _ = best_checkpoint(run)
    verifier = SpeakerVerifier.from_hparams(
        export_pretrained(trained_vctk_run, tmp_path / "frozen")
    )
    state = {
        key: value + 0.01 if value.is_floating_point() else value
        for key, value in verifier.mods.front_end.state_dict().items()
    }
    torch.save(state, checkpoint / "front_end.ckpt")

    out = export_pretrained(run, tmp_path / "fine_tuned")
    assert (out / "front_end.ckpt").is_file()
    loaded = SpeakerVerifier.from_hparams(out).mods.front_end.state_dict()
    key = "model.encoder.layers.0.attention.q_proj.weight"
    assert torch.equal(loaded[key], state[key])


def test_run_folder_is_exported_once(trained_vctk_run, tmp_path):
    """ensure_pretrained exports a run into <run>/pretrained, then reuses."""
    run = tmp_path / "run"
    shutil.copytree(
        trained_vctk_run, run, ignore=shutil.ignore_patterns("data")
    )
    folder = ensure_pretrained(run)
    assert folder == run / "pretrained"
    stamp = (folder / "export.json").stat().st_mtime_ns
    assert ensure_pretrained(run) == folder
    assert (folder / "export.json").stat().st_mtime_ns == stamp

    info = json.loads((folder / "export.json").read_text())
    info["checkpoint"] = "CKPT+older"
    (folder / "export.json").write_text(json.dumps(info))
    ensure_pretrained(run)
    info = json.loads((folder / "export.json").read_text())
    assert info["checkpoint"] == best_checkpoint(run)[0].name
    assert pathlib.Path(ensure_pretrained(folder)) == folder


def test_relative_run_paths_become_absolute(tmp_path):
    """A run launched from a recipe folder keeps working from anywhere."""
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    run_yaml = """
output_folder: results/unipool/1234
ssl_source: models/tiny
front_end: !new:torch.nn.Identity
    source: !ref <ssl_source>
    save_path: pretrained_models
embedding_model: !new:torch.nn.Identity
"""
    run = tmp_path / "results" / "unipool" / "1234"
    cwd = training_cwd(run, "results/unipool/1234")
    assert cwd == tmp_path
    text = pretrained_hparams_yaml(run_yaml, training_cwd=cwd)
    assert f"source: {tmp_path / 'models' / 'tiny'}\n" in text
    assert f"save_path: {tmp_path / 'pretrained_models'}\n" in text
    hub = run_yaml.replace("models/tiny", "facebook/wav2vec2-base")
    assert "source: facebook/wav2vec2-base\n" in pretrained_hparams_yaml(
        hub, training_cwd=cwd
    )
