"""MUSAN and RIRS_NOISES preparation (data_prep.noise_corpora) and the
mini corpora it is tested on (data_prep.mini_noise).

Authors
 * unipool-sv developers 2026
"""

import hashlib
import pathlib
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
import soundfile

import data_prep.noise_corpora as noise_corpora
from data_prep.common import read_csv
from data_prep.mini_noise import write_mini_musan, write_mini_rirs
from data_prep.noise_corpora import (
    MUSAN_COLUMNS,
    RIR_COLUMNS,
    prepare_noise_corpora,
    window_starts,
)

RATE = 16000


def speech_wav(folder, seconds=2.0, seed=0):
    """A speech-like stand-in (noise bursts) for the mini MUSAN speech."""
    rng = np.random.default_rng(seed)
    audio = rng.normal(0, 0.1, int(seconds * RATE)).astype(np.float32)
    path = pathlib.Path(folder) / f"speech{seed}.wav"
    soundfile.write(path, audio, RATE)
    return path


@pytest.fixture
def mini(tmp_path):
    """Mini MUSAN and RIRS_NOISES under ``tmp_path/corpora``."""
    root = tmp_path / "corpora"
    root.mkdir()
    musan = write_mini_musan(root, [speech_wav(root)])
    rirs = write_mini_rirs(root)
    return pathlib.Path(musan), pathlib.Path(rirs)


def test_window_rule_is_the_authors():
    """Starts 0, 3, 6 ... s while start < length - 5 s: a 5 s file gives
    none, 5 s + 1 sample one, 8 s one (3 s is not < 3 s), 11 s two (0 and
    3 s); catches <= for <, or windows that must fit (start + 5 <= length:
    11 s would give 0, 3 and 6 s)."""
    window, hop = 5 * RATE, 3 * RATE
    assert window_starts(5 * RATE, window, hop) == []
    assert window_starts(4 * RATE, window, hop) == []
    assert window_starts(5 * RATE + 1, window, hop) == [0]
    assert window_starts(8 * RATE, window, hop) == [0]
    assert window_starts(8 * RATE + 1, window, hop) == [0, 3 * RATE]
    assert window_starts(11 * RATE, window, hop) == [0, 3 * RATE]
    starts = window_starts(14 * RATE + 1, window, hop)
    assert starts == [0, 3 * RATE, 6 * RATE, 9 * RATE]


def test_manifests_of_the_mini_corpora(mini, tmp_path):
    """musan.csv: every window of every file by the rule, start/stop in
    samples of the original file (no window file written), IDs as the
    authors' split file names, types from the folders; rirs.csv: the
    listed real RIRs and every simulated one, with their kinds."""
    musan, rirs = mini
    paths = prepare_noise_corpora(
        musan.parent, rirs.parent, tmp_path / "prep", num_workers=1
    )
    rows = read_csv(paths["musan"])
    assert list(rows[0]) == list(MUSAN_COLUMNS)
    expected = []
    for path in sorted(musan.glob("*/*/*.wav")):
        frames = soundfile.info(str(path)).frames
        for start in window_starts(frames, 5 * RATE, 3 * RATE):
            expected.append((str(path.resolve()), start))
    assert [(r["wav"], int(r["start"])) for r in rows] == expected
    assert {r["type"] for r in rows} == {"noise", "music", "speech"}
    for row in rows:
        assert int(row["stop"]) - int(row["start"]) == 5 * RATE
        assert float(row["duration"]) == 5.0
        relative = pathlib.Path(row["wav"]).relative_to(musan.resolve())
        assert row["type"] == relative.parts[0]
        seconds = int(row["start"]) // RATE
        assert row["ID"] == f"{relative.with_suffix('')}/{seconds:05d}"
    # The default mini MUSAN: noise 8.5, 6.5, 4.5 s, music 8.5, 5.0 s,
    # speech 8.5, 6.5 s -> 2 + 1 + 0, 2 + 0, 2 + 1 windows.
    counts = {
        kind: sum(r["type"] == kind for r in rows)
        for kind in ("noise", "music", "speech")
    }
    assert counts == {"noise": 3, "music": 2, "speech": 3}
    assert not list(tmp_path.glob("prep/**/*.wav"))

    rir_rows = read_csv(paths["rirs"])
    assert list(rir_rows[0]) == list(RIR_COLUMNS)
    kinds = {r["ID"]: r["kind"] for r in rir_rows}
    assert kinds == {
        "real_rirs_isotropic_noises/air_type1_air_mini_0": "real",
        "real_rirs_isotropic_noises/air_type1_air_mini_1": "real",
        "real_rirs_isotropic_noises/air_type1_air_mini_2": "real",
        "simulated_rirs/smallroom/Room001/Room001-00001": "simulated",
        "simulated_rirs/smallroom/Room002/Room002-00001": "simulated",
        "simulated_rirs/mediumroom/Room001/Room001-00001": "simulated",
    }
    for row in rir_rows:
        assert pathlib.Path(row["wav"]).is_file()
        assert float(row["duration"]) == 0.25
    assert pathlib.Path(paths["problems"]).read_text() == ""


def test_the_corpus_folders_themselves_are_accepted(mini, tmp_path):
    """``musan/`` and ``RIRS_NOISES/`` given directly give the same
    manifests as their parent folders."""
    musan, rirs = mini
    first = prepare_noise_corpora(
        musan.parent, rirs.parent, tmp_path / "a", num_workers=1
    )
    second = prepare_noise_corpora(musan, rirs, tmp_path / "b", num_workers=1)
    for key in ("musan", "rirs"):
        assert first[key].read_text() == second[key].read_text()


def test_skip_if_done_and_redone_on_other_options(mini, tmp_path, monkeypatch):
    """A second run with the same options reads nothing; other options (the
    hop) rewrite the manifest; skip_prep returns the paths only."""
    musan, rirs = mini
    save = tmp_path / "prep"
    paths = prepare_noise_corpora(musan, rirs, save, num_workers=1)
    before = paths["musan"].read_text()

    def fail(*args, **kwargs):
        raise AssertionError("the preparation ran again")

    with monkeypatch.context() as patch:
        patch.setattr(noise_corpora, "musan_rows", fail)
        again = prepare_noise_corpora(musan, rirs, save, num_workers=1)
    assert again == paths and paths["musan"].read_text() == before
    other = prepare_noise_corpora(
        musan, rirs, save, hop_seconds=1.0, num_workers=1
    )
    assert len(read_csv(other["musan"])) > len(before.splitlines()) - 1
    skipped = prepare_noise_corpora(
        tmp_path / "absent", tmp_path / "absent", tmp_path / "x", skip_prep=True
    )
    assert skipped["musan"] == (tmp_path / "x" / "musan.csv").resolve()
    assert not (tmp_path / "x").exists()


def test_a_failed_rewrite_keeps_the_old_manifest(mini, tmp_path, monkeypatch):
    """The manifests are written atomically and the done-record last: a
    failure while writing rirs.csv leaves the previous rirs.csv whole, no
    temporary file behind and no done-record, so the next run prepares
    again."""
    musan, rirs = mini
    save = tmp_path / "prep"
    paths = prepare_noise_corpora(musan, rirs, save, num_workers=1)
    old = {key: paths[key].read_text() for key in ("musan", "rirs")}
    real_rows = noise_corpora.rir_rows

    def broken_rows(*args, **kwargs):
        rows = real_rows(*args, **kwargs)
        rows[-1] = {"ID": "half a row"}  # write_csv_atomic refuses it
        return rows

    monkeypatch.setattr(noise_corpora, "rir_rows", broken_rows)
    with pytest.raises(ValueError, match="columns"):
        prepare_noise_corpora(musan, rirs, save, hop_seconds=2.0)
    assert paths["rirs"].read_text() == old["rirs"]
    assert sorted(p.name for p in save.iterdir()) == [
        "musan.csv",
        "noise_corpora_problems.txt",
        "rirs.csv",
    ]
    monkeypatch.setattr(noise_corpora, "rir_rows", real_rows)
    again = prepare_noise_corpora(musan, rirs, save, num_workers=1)
    assert again["rirs"].read_text() == old["rirs"]
    assert (save / "prepare_noise_corpora_opts.json").is_file()


def test_a_missing_folder_is_named(tmp_path, mini):
    """A missing MUSAN or RIRS_NOISES folder raises FileNotFoundError
    naming it, and nothing is written."""
    musan, rirs = mini
    with pytest.raises(FileNotFoundError, match=r"nowhere.*no musan"):
        prepare_noise_corpora(tmp_path / "nowhere", rirs, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=r"nowhere.*no RIRS_NOISES"):
        prepare_noise_corpora(musan, tmp_path / "nowhere", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_problems_are_reported_and_skipped(mini, tmp_path):
    """A MUSAN file at 8 kHz, an unreadable one and a rir_list line naming
    a missing file are reported (file or file:line) and skipped; a MUSAN
    type folder missing is reported."""
    musan, rirs = mini
    odd = musan / "noise" / "free-sound" / "noise-8k.wav"
    soundfile.write(odd, np.zeros(8000 * 7, dtype=np.float32), 8000)
    (musan / "music" / "fma" / "broken.wav").write_bytes(b"RIFF junk")
    listing = rirs / "real_rirs_isotropic_noises" / "rir_list"
    with listing.open("a") as out:
        out.write("--rir-id gone --room-id r RIRS_NOISES/gone/gone.wav\n")
    for path in (musan / "speech").rglob("*.wav"):
        path.unlink()
    for folder in sorted((musan / "speech").glob("*")):
        folder.rmdir()
    (musan / "speech").rmdir()
    paths = prepare_noise_corpora(musan, rirs, tmp_path / "prep", num_workers=1)
    report = pathlib.Path(paths["problems"]).read_text()
    assert f"{odd}: sample rate 8000 Hz, not 16000 Hz; skipped" in report
    assert "broken.wav" in report
    assert f"{listing}:4: {rirs / 'gone' / 'gone.wav'} not found" in report
    assert f"{musan / 'speech'}: missing" in report
    rows = read_csv(paths["musan"])
    assert not any("noise-8k" in r["wav"] or "broken" in r["wav"] for r in rows)
    assert len(read_csv(paths["rirs"])) == 6


def test_mini_corpora_are_small_deterministic_and_in_the_real_layout(
    tmp_path,
):
    """Same seed, same bytes; another seed, other bytes; the real layouts
    (musan/<type>/<source>/<name>.wav, rir_list whose last field is the
    path, simulated_rirs/<size>/RoomNNN/RoomNNN-00001.wav, one two-channel
    real RIR); under 2 MB in all."""
    speech = speech_wav(tmp_path)

    def digest(root):
        files = sorted(p for p in root.rglob("*") if p.is_file())
        blob = b"".join(p.read_bytes() for p in files)
        return hashlib.sha256(blob).hexdigest(), sum(
            len(p.read_bytes()) for p in files
        )

    hashes = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        root = tmp_path / name
        write_mini_musan(root, [speech], seed=seed)
        write_mini_rirs(root, seed=seed)
        hashes.append(digest(root))
    assert hashes[0] == hashes[1] and hashes[0][0] != hashes[2][0]
    assert hashes[0][1] < 2_000_000
    root = tmp_path / "a"
    names = sorted(
        str(p.relative_to(root / "musan")) for p in root.rglob("musan/**/*.wav")
    )
    assert "noise/free-sound/noise-free-sound-0000.wav" in names
    assert "speech/us-gov/speech-us-gov-0001.wav" in names
    assert all(len(pathlib.Path(n).parts) == 3 for n in names)
    rirs = root / "RIRS_NOISES"
    for line in (
        (rirs / "real_rirs_isotropic_noises" / "rir_list")
        .read_text()
        .splitlines()
    ):
        path = root / line.split()[-1]
        assert path.is_file()
    channels = [
        soundfile.info(str(p)).channels
        for p in (rirs / "real_rirs_isotropic_noises").glob("*.wav")
    ]
    assert sorted(channels) == [1, 1, 2]
    assert (
        rirs / "simulated_rirs/smallroom/Room002/Room002-00001.wav"
    ).is_file()
    speech_audio, _ = soundfile.read(
        str(root / "musan/speech/librivox/speech-librivox-0000.wav")
    )
    assert speech_audio.shape[0] == int(8.5 * RATE)
    with pytest.raises(ValueError, match="no speech wav"):
        write_mini_musan(tmp_path / "d", [])


def test_archives_are_fetched_only_when_a_source_is_given(mini, tmp_path):
    """With no corpus in the folders, a source (here local archives, as
    SpeechBrain's download_file copies a path that is not a URL; no
    network) is unpacked into them and prepared; without one, nothing is
    fetched and the missing folder is named."""
    musan, rirs = mini
    musan_archive = tmp_path / "musan.tar.gz"
    with tarfile.open(musan_archive, "w:gz") as archive:
        archive.add(musan, arcname="musan")
    rirs_archive = tmp_path / "rirs_noises.zip"
    with zipfile.ZipFile(rirs_archive, "w") as archive:
        for path in sorted(rirs.rglob("*")):
            archive.write(path, path.relative_to(rirs.parent).as_posix())
    expected = prepare_noise_corpora(musan, rirs, tmp_path / "a", num_workers=1)
    shutil.rmtree(musan.parent)
    target = tmp_path / "fetched"
    with pytest.raises(FileNotFoundError, match="no musan"):
        prepare_noise_corpora(target, target, tmp_path / "b")
    paths = prepare_noise_corpora(
        target,
        target,
        tmp_path / "b",
        musan_url=str(musan_archive),
        rirs_url=str(rirs_archive),
        num_workers=1,
    )
    assert (target / "musan" / "noise").is_dir()
    for key in ("musan", "rirs"):
        old_root, new_root = str(musan.parent.resolve()), str(target.resolve())
        assert paths[key].read_text() == expected[key].read_text().replace(
            old_root, new_root
        )
