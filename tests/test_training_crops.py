"""Training crops of the recipe script: the authors' wrap rule by default.

Before ``crop_padding`` existed, an utterance shorter than the crop was
kept whole and zero-padded in the batch: every case below asserting a
full-length, tiled crop failed on that code.
"""

import pathlib

import numpy as np
import pytest
import soundfile
import speechbrain as sb
import torch
import yaml
from recipe_script import load_recipe_script

from data_prep.common import write_csv_atomic
from unipool_lobes.dataio.cropping import wrap_pad

RECIPES = pathlib.Path(__file__).resolve().parents[1] / "recipes"
RATE = 16000


@pytest.fixture(scope="module")
def script():
    return load_recipe_script()


def _hparams(tmp_path, durations, crop_padding, crop_seconds=3.0):
    """Manifests of one utterance per speaker, each of a given duration."""
    rng = np.random.default_rng(0)
    rows, signals = [], {}
    for index, duration in enumerate(durations):
        samples = rng.standard_normal(int(duration * RATE)) * 0.1
        path = tmp_path / f"utt{index}.wav"
        soundfile.write(path, samples.astype(np.float32), RATE)
        signals[f"utt{index}"] = torch.tensor(samples, dtype=torch.float32)
        rows.append(
            {
                "ID": f"utt{index}",
                "duration": duration,
                "wav": str(path),
                "start": 0,
                "stop": len(samples),
                "spk_id": f"spk{index}",
            }
        )
    fields = ["ID", "duration", "wav", "start", "stop", "spk_id"]
    manifest = tmp_path / "train.csv"
    write_csv_atomic(str(manifest), rows, fields)
    (tmp_path / "save").mkdir(exist_ok=True)
    hparams = {
        "sample_rate": RATE,
        "crop_seconds": crop_seconds,
        "crop_padding": crop_padding,
        "data_folder": str(tmp_path),
        "save_folder": str(tmp_path / "save"),
        "out_n_neurons": len(durations),
    }
    for split in ("train", "valid", "test"):
        hparams[f"{split}_annotation"] = str(manifest)
    return hparams, signals


def test_a_short_utterance_is_tiled_to_the_crop(script, tmp_path):
    """A 1 s utterance in a 3 s crop is the utterance three times over."""
    hparams, signals = _hparams(tmp_path, [1.0], "wrap")
    datasets, _ = script.dataio_prep(hparams)
    crop = datasets["train"][0]["sig"]
    assert crop.shape == (3 * RATE,)
    expected = torch.cat([signals["utt0"]] * 3)
    torch.testing.assert_close(crop, expected, atol=1e-4, rtol=0)


def test_a_wrapped_batch_holds_no_padding(script, tmp_path):
    """Short and long utterances give full crops: every relative length is
    1 (with ``pad``, the short ones are shorter and padded)."""
    hparams, _ = _hparams(tmp_path, [0.4, 1.3, 2.2, 4.5], "wrap")
    datasets, _ = script.dataio_prep(hparams)
    batch = sb.dataio.batch.PaddedBatch(
        [datasets["train"][i] for i in range(4)]
    )
    assert batch.sig.data.shape == (4, 3 * RATE)
    assert torch.equal(batch.sig.lengths, torch.ones(4))

    hparams["crop_padding"] = "pad"
    datasets, _ = script.dataio_prep(hparams)
    batch = sb.dataio.batch.PaddedBatch(
        [datasets["train"][i] for i in range(4)]
    )
    assert batch.sig.lengths.tolist()[:3] == pytest.approx(
        [0.4 / 3, 1.3 / 3, 2.2 / 3], abs=1e-4
    )


def test_a_long_utterance_gives_a_random_crop_of_itself(script, tmp_path):
    hparams, signals = _hparams(tmp_path, [4.5], "wrap")
    datasets, _ = script.dataio_prep(hparams)
    crop = datasets["train"][0]["sig"].numpy()
    whole = signals["utt0"].numpy()
    assert crop.shape == (3 * RATE,)
    matches = [
        start
        for start in range(len(whole) - len(crop) + 1)
        if abs(whole[start] - crop[0]) < 1e-4
        and np.allclose(whole[start : start + len(crop)], crop, atol=1e-4)
    ]
    assert matches


def test_an_unknown_crop_padding_is_named(script, tmp_path):
    hparams, _ = _hparams(tmp_path, [1.0], "repeat")
    with pytest.raises(ValueError, match="crop_padding: 'repeat'"):
        script.dataio_prep(hparams)


def test_every_cropped_yaml_wraps_by_default():
    """The paper's yamls follow the authors' rule unless told otherwise."""
    yamls = sorted(RECIPES.glob("*/hparams/*.yaml"))
    assert len(yamls) == 42  # 36 of the paper, 6 of the VoxCeleb2 SOTA runs
    for path in yamls:
        text = path.read_text()
        (line,) = [
            row for row in text.splitlines() if row.startswith("crop_padding:")
        ]
        assert yaml.safe_load(line) == {"crop_padding": "wrap"}, path


def test_wrap_pad_matches_numpy_wrap():
    signal = torch.arange(7.0)
    for n_samples in (7, 8, 13, 14, 50):
        expected = np.pad(signal.numpy(), (0, n_samples - 7), mode="wrap")
        assert wrap_pad(signal, n_samples).numpy().tolist() == (
            expected.tolist()
        )
