"""Tests of data_prep.common: atomic writes, skip-if-done, audio conversion,
speaker splits and the problems report."""

import os

import numpy as np
import pytest
import soundfile

from data_prep import common


def _tone(seconds, rate, frequency=440.0, channels=1):
    time = np.arange(int(seconds * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * frequency * time)
    return np.stack([tone] * channels, axis=1) if channels > 1 else tone


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_atomic_open_keeps_old_content_on_error(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with common.atomic_open(path) as out:
            out.write("half")
            raise RuntimeError("crash")
    assert path.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_write_csv_atomic_crash_mid_write_leaves_no_file(tmp_path):
    def rows():
        yield {"ID": "a", "duration": 1.0}
        raise KeyboardInterrupt  # the process is stopped mid-write

    path = tmp_path / "train.csv"
    with pytest.raises(KeyboardInterrupt):
        common.write_csv_atomic(path, rows(), ["ID", "duration"])
    assert not path.exists()
    assert _leftovers(tmp_path) == []


def test_write_csv_atomic_rejects_rows_with_other_columns(tmp_path):
    path = tmp_path / "m.csv"
    with pytest.raises(ValueError, match="m.csv: row 1"):
        common.write_csv_atomic(
            path, [{"ID": "a"}, {"ID": "b", "x": 1}], ["ID"]
        )
    assert not path.exists()


def test_csv_round_trip(tmp_path):
    rows = [{"ID": "p225_025", "wav": "/a b/c.wav", "spk_id": "p225"}]
    path = common.write_csv_atomic(tmp_path / "m.csv", rows, list(rows[0]))
    assert common.read_csv(path) == rows


def test_skip_record_compares_options_and_outputs(tmp_path):
    output = tmp_path / "train.csv"
    options = {"seed": 1, "speakers": ("p280", "p315"), "path": tmp_path}
    assert not common.is_prepared(tmp_path, "demo", options, [output])
    common.mark_prepared(tmp_path, "demo", options)
    # Output missing: not prepared, even with the right options.
    assert not common.is_prepared(tmp_path, "demo", options, [output])
    output.write_text("x")
    assert common.is_prepared(tmp_path, "demo", options, [output])
    # Tuples and lists, paths and strings are the same option.
    same = {"seed": 1, "speakers": ["p280", "p315"], "path": str(tmp_path)}
    assert common.is_prepared(tmp_path, "demo", same, [output])
    assert not common.is_prepared(tmp_path, "demo", {**same, "seed": 2}, [])
    common.clear_prepared(tmp_path, "demo")
    assert not common.is_prepared(tmp_path, "demo", options, [output])


def test_skip_record_survives_garbage(tmp_path):
    common.options_path(tmp_path, "demo").write_text("{not json")
    assert not common.is_prepared(tmp_path, "demo", {}, [])


def test_scan_audio_reports_unreadable_files(tmp_path):
    good, bad = tmp_path / "good.flac", tmp_path / "bad.flac"
    soundfile.write(good, _tone(0.1, 48000), 48000)
    bad.write_bytes(b"fLaC garbage")
    report = common.ProblemReport()
    infos = common.scan_audio([good, bad], report)
    assert infos == {good: common.AudioInfo(4800, 48000, 1)}
    assert len(report) == 1 and "bad.flac" in report.lines()[0]
    with pytest.raises(ValueError, match="bad.flac"):
        common.scan_audio([bad])


def test_convert_audio_resamples_to_mono_and_keeps_duration(tmp_path):
    source = tmp_path / "in.flac"
    soundfile.write(source, _tone(1.01, 48000, channels=2), 48000)
    target = tmp_path / "out" / "in.wav"
    frames = common.convert_audio(source, target, 16000)
    audio, rate = soundfile.read(target)
    assert rate == 16000 and audio.ndim == 1 and len(audio) == frames
    assert abs(len(audio) / rate - 1.01) < 1 / 16000
    # The tone survives resampling (away from the edges).
    expected = _tone(1.01, 16000)[: len(audio)]
    middle = slice(200, -200)
    error = np.abs(audio[middle] - expected[middle]).max()
    assert error < 0.01
    assert soundfile.info(target).subtype == "PCM_16"


def test_convert_audio_reuses_done_file_and_redoes_wrong_one(tmp_path):
    source = tmp_path / "in.wav"
    soundfile.write(source, _tone(0.5, 48000), 48000)
    target = tmp_path / "in16.wav"
    common.convert_audio(source, target)
    stamp = target.stat().st_mtime_ns
    os.utime(target, ns=(stamp - 10**9, stamp - 10**9))
    common.convert_audio(source, target)
    assert target.stat().st_mtime_ns == stamp - 10**9  # not rewritten
    # A truncated earlier result is replaced.
    soundfile.write(target, np.zeros(100), 16000)
    assert common.convert_audio(source, target) == 8000
    assert soundfile.info(target).frames == 8000


def test_convert_audio_rejects_truncated_source(tmp_path):
    source = tmp_path / "in.flac"
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 48000)
    soundfile.write(source, noise, 48000)
    data = source.read_bytes()
    source.write_bytes(data[: len(data) // 2])  # header claims more
    assert common.audio_info(source).frames == 48000
    with pytest.raises(ValueError, match="in.flac"):
        common.convert_audio(source, tmp_path / "out.wav")
    assert not (tmp_path / "out.wav").exists()


def test_convert_audio_files_in_a_pool(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "PARALLEL_MIN_FILES", 2)
    jobs = []
    for index in range(4):
        source = tmp_path / f"{index}.flac"
        soundfile.write(source, _tone(0.1 * (index + 1), 48000), 48000)
        jobs.append((source, tmp_path / "out" / f"{index}.wav"))
    (tmp_path / "broken.flac").write_bytes(b"nothing")
    jobs.append((tmp_path / "broken.flac", tmp_path / "out" / "broken.wav"))
    report = common.ProblemReport()
    frames = common.convert_audio_files(jobs, 16000, report, num_workers=2)
    assert [frames[target] for _, target in jobs[:4]] == [
        1600,
        3200,
        4800,
        6400,
    ]
    assert len(report) == 1 and "broken.flac" in report.lines()[0]


def test_problem_report_file(tmp_path):
    report = common.ProblemReport()
    path = report.write(tmp_path / "problems.txt")
    assert path.read_text() == ""
    report.add("speaker-info.txt:3", "bad line")
    report.add(tmp_path / "a.flac", "unreadable")
    lines = report.write(path).read_text().splitlines()
    assert lines == [
        "speaker-info.txt:3: bad line",
        f"{tmp_path}/a.flac: unreadable",
    ]


def test_resampled_length_matches_torchaudio():
    import torch
    import torchaudio.functional

    for frames, orig, new in [(48001, 48000, 16000), (44101, 44100, 16000)]:
        out = torchaudio.functional.resample(torch.zeros(frames), orig, new)
        assert common.resampled_length(frames, orig, new) == len(out)


@pytest.mark.parametrize(
    "n_speakers, wanted, expected",
    [(108, (18, 18), (18, 18)), (24, (18, 18), (4, 4)), (6, (18, 18), (2, 2))],
)
def test_scaled_heldout_counts(n_speakers, wanted, expected):
    got = common.scaled_heldout_counts(n_speakers, *wanted)
    assert got == expected
    # Two thirds stay for training unless the minimum of 2 speakers binds.
    assert n_speakers - sum(got) >= min(sum(got), n_speakers - 4)


def test_scaled_heldout_counts_refuses_tiny_corpus():
    with pytest.raises(ValueError, match="5 speakers"):
        common.scaled_heldout_counts(5, 1, 1)


def test_split_speakers_is_seeded_disjoint_and_gender_balanced():
    genders = {f"p{200 + i}": "F" if i % 3 else "M" for i in range(30)}
    split = common.split_speakers(genders, 6, 3, seed=5)
    assert split == common.split_speakers(
        dict(reversed(list(genders.items()))), 6, 3, seed=5
    )
    assert split != common.split_speakers(genders, 6, 3, seed=6)
    parts = [set(split[name]) for name in ("train", "valid", "test")]
    assert sum(map(len, parts)) == 30 and set.union(*parts) == set(genders)
    assert [len(p) for p in parts] == [21, 6, 3]
    # 20 F / 10 M in the corpus: valid gets 4 F + 2 M, test 2 F + 1 M.
    assert sorted(genders[s] for s in split["valid"]).count("M") == 2
    assert sorted(genders[s] for s in split["test"]).count("M") == 1


def test_split_speakers_refuses_no_train():
    with pytest.raises(ValueError, match="no training speaker"):
        common.split_speakers({"a": "F", "b": "M"}, 1, 1)
