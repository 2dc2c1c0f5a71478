"""Tests of data_prep.mini_corpus: VCTK layouts, determinism, and speakers
that a simple spectral feature tells apart."""

import pathlib

import numpy as np
import pytest
import soundfile
from scipy import signal

from data_prep import mini_corpus
from data_prep.vctk import read_speaker_info


def _contents(folder):
    """What a corpus folder holds: its speakers' meta and audio files."""
    folder = pathlib.Path(folder)
    return {
        "speakers": read_speaker_info(folder / "speaker-info.txt"),
        "files": sorted(folder.glob("wav48*/*/*.*")),
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mini_vctk")
    returned = mini_corpus.write_mini_vctk(
        folder,
        n_speakers=8,
        utterances_per_speaker=6,
        seed=3,
        duration_range=(1.0, 1.5),
    )
    assert returned == str(folder)
    return folder, _contents(folder)


def test_layout_0_92(corpus):
    folder, contents = corpus
    speakers = [f"p{225 + i}" for i in range(8)]
    assert sorted(contents["speakers"]) == speakers
    audio_root = folder / "wav48_silence_trimmed"
    assert sorted(p.name for p in audio_root.iterdir()) == speakers
    names = sorted(p.name for p in (audio_root / "p229").iterdir())
    numbers = ["001", "002", "025", "026", "027", "028", "029", "030"]
    assert names == [f"p229_{n}_mic1.flac" for n in numbers]
    assert (folder / "txt" / "p229" / "p229_027.txt").read_text().strip()
    assert len(contents["files"]) == 8 * 8
    for path in contents["files"][:10]:
        info = soundfile.info(path)
        assert (info.samplerate, info.channels, info.format) == (
            48000,
            1,
            "FLAC",
        )
        assert 1.0 <= info.duration <= 1.5 + 1e-3


def test_speaker_info_holds_the_voices_meta(corpus):
    folder, contents = corpus
    header = (folder / "speaker-info.txt").read_text().splitlines()[0]
    assert header.split() == [
        "ID",
        "AGE",
        "GENDER",
        "ACCENTS",
        "REGION",
        "COMMENTS",
    ]
    info = contents["speakers"]
    for speaker in info:
        profile = mini_corpus.make_speaker_profile(speaker, seed=3)
        assert info[speaker] == profile.meta()
    genders = {meta["gender"] for meta in info.values()}
    accents = [meta["accent"] for meta in info.values()]
    assert genders <= {"F", "M"}
    assert len(set(accents)) < len(accents)  # meta values repeat


def test_layout_0_80(tmp_path):
    mini_corpus.write_mini_vctk(
        tmp_path,
        n_speakers=2,
        utterances_per_speaker=1,
        layout="0.80",
        duration_range=(0.3, 0.4),
    )
    contents = _contents(tmp_path)
    paths = [p.relative_to(tmp_path).as_posix() for p in contents["files"]]
    assert paths[:3] == [
        "wav48/p225/p225_001.wav",
        "wav48/p225/p225_002.wav",
        "wav48/p225/p225_025.wav",
    ]
    assert soundfile.info(contents["files"][0]).format == "WAV"
    lines = (tmp_path / "speaker-info.txt").read_text().splitlines()
    assert lines[1].split()[0] == "225"  # 0.80 writes IDs without "p"
    profile = mini_corpus.make_speaker_profile("p225", seed=0)
    assert contents["speakers"]["p225"] == profile.meta()


def test_named_speakers_utterances_and_mics(tmp_path):
    mini_corpus.write_mini_vctk(
        tmp_path,
        speakers=["p329", "p263"],
        utterance_numbers={"p329": [50, 382]},
        n_shared=0,
        utterances_per_speaker=1,
        mics=("mic1", "mic2"),
        duration_range=(0.3, 0.4),
    )
    names = [p.name for p in _contents(tmp_path)["files"]]
    assert names == [
        "p263_025_mic1.flac",
        "p263_025_mic2.flac",
        "p329_050_mic1.flac",
        "p329_050_mic2.flac",
        "p329_382_mic1.flac",
        "p329_382_mic2.flac",
    ]
    mic1, _ = soundfile.read(
        tmp_path / "wav48_silence_trimmed/p263/p263_025_mic1.flac"
    )
    mic2, _ = soundfile.read(
        tmp_path / "wav48_silence_trimmed/p263/p263_025_mic2.flac"
    )
    assert mic1.shape == mic2.shape and not np.allclose(mic1, mic2)


def test_bad_layout_is_refused(tmp_path):
    with pytest.raises(ValueError, match="layout"):
        mini_corpus.write_mini_vctk(tmp_path, layout="0.91")


def test_deterministic_from_the_seed(tmp_path, corpus):
    folder, contents = corpus
    # A speaker's audio depends on the seed, its ID and the utterance
    # number only: written alone it is the same as in the full corpus.
    for name, seed in (("same", 3), ("other", 4)):
        mini_corpus.write_mini_vctk(
            tmp_path / name,
            speakers=["p229"],
            seed=seed,
            utterances_per_speaker=6,
            duration_range=(1.0, 1.5),
        )
    relative = "wav48_silence_trimmed/p229/p229_027_mic1.flac"
    original = soundfile.read(folder / relative)[0]
    same = soundfile.read(tmp_path / "same" / relative)[0]
    other = soundfile.read(tmp_path / "other" / relative)[0]
    assert np.array_equal(original, same)
    assert original.shape != other.shape or not np.allclose(original, other)
    again = _contents(tmp_path / "same")["speakers"]["p229"]
    assert again == contents["speakers"]["p229"]


def _spectral_feature(path):
    """Mean log power spectrum (16 kHz, 32 ms frames) of the louder half
    of the frames."""
    audio, rate = soundfile.read(path, dtype="float32")
    audio = signal.resample_poly(audio, 1, rate // 16000)
    _, _, spectrum = signal.stft(audio, nperseg=512)
    power = np.abs(spectrum) ** 2
    energy = power.sum(axis=0)
    loud = energy >= np.median(energy)
    return np.log(power[:, loud] + 1e-10).mean(axis=1)


def test_speakers_differ(corpus):
    """Leave-one-out nearest speaker centroid on a mean log spectrum is far
    better than chance (1 / 8): at least three times chance."""
    _, written = corpus
    kept = [p for p in written["files"] if int(p.name.split("_")[1]) >= 25]
    features = np.array([_spectral_feature(p) for p in kept])
    labels = np.array([p.parent.name for p in kept])
    features -= features.mean(axis=0)
    correct = 0
    for index in range(len(kept)):
        others = np.arange(len(kept)) != index
        centroids = {
            speaker: features[others & (labels == speaker)].mean(axis=0)
            for speaker in set(labels)
        }
        guess = min(
            centroids,
            key=lambda s: np.sum((features[index] - centroids[s]) ** 2),
        )
        correct += guess == labels[index]
    accuracy = correct / len(kept)
    assert accuracy > 3 / 8, accuracy  # chance: 1 / 8


def test_synthesis_is_sample_rate_independent():
    profile = mini_corpus.make_speaker_profile("p300", seed=0)
    for rate in (16000, 48000):
        audio = mini_corpus.synthesize_utterance(
            profile, np.random.default_rng(1), 0.5, rate
        )
        assert audio.shape == (rate // 2,) and np.abs(audio).max() <= 1.0
        assert np.abs(audio).max() > 0.2  # not silent


def test_synthesis_at_16k_with_fricatives_near_nyquist():
    """Regression: at 16 kHz a fricative resonance of this speaker can sit
    at or above 0.45 fs (7.2 kHz); it used to leave an empty filter cascade
    and crash ``sosfilt`` for about one seed in five."""
    profile = mini_corpus.make_speaker_profile("id10001", 0)
    assert 6500 * profile.formant_scale >= 0.45 * 16000  # the risky case
    for seed in range(50):
        audio = mini_corpus.synthesize_utterance(
            profile, np.random.default_rng(seed), 0.5, 16000
        )
        assert audio.shape == (8000,) and np.isfinite(audio).all(), seed
        assert 0.2 < np.abs(audio).max() <= 1.0, seed


def test_profiles_follow_gender():
    female = [
        mini_corpus.make_speaker_profile(f"p{i}", 0, "F") for i in range(20)
    ]
    male = [
        mini_corpus.make_speaker_profile(f"p{i}", 0, "M") for i in range(20)
    ]
    assert min(p.f0 for p in female) > max(p.f0 for p in male)
    assert np.mean([p.formant_scale for p in female]) > np.mean(
        [p.formant_scale for p in male]
    )


def test_command_line(tmp_path, capsys):
    mini_corpus.main(
        ["vctk", "--out", str(tmp_path), "--speakers", "2", "--utterances", "1"]
    )
    assert "wrote 6 audio files of 2 speakers" in capsys.readouterr().out
    assert (
        tmp_path / "wav48_silence_trimmed/p226/p226_025_mic1.flac"
    ).is_file()
