"""Hostile inputs to the corpus preparations (VCTK, LibriSpeech, VoxCeleb).

Each preparation runs once, by the paper route on small lists written here,
on a small corpus holding every hostile file at once; each test then checks
one input on every preparation where it applies: no crash, one line of
``prepare_problems.txt`` naming the file and the reason, and the good files
used. LibriSpeech runs twice: FLAC read in place and ``convert_flac=True``.

What happens to each input:

* corrupt, truncated, zero-length (0 bytes), zero-sample and non-audio
  files with an audio extension, files under ``min_duration`` and paths
  that cannot be opened: reported and skipped;
* silent files (all zeros) are kept: they are readable audio of the right
  format, telling silence needs a decode the header-only routes
  (LibriSpeech in place, VoxCeleb) avoid by design, and a silent crop
  gives finite features;
* files shorter than the crop but not under ``min_duration``: kept (training
  pads them in the batch);
* another sample rate: VCTK and LibriSpeech with ``convert_flac`` resample;
  LibriSpeech in place and VoxCeleb report and skip;
* stereo: VCTK and LibriSpeech with ``convert_flac`` down-mix; LibriSpeech
  in place and VoxCeleb keep the file (training down-mixes);
* a speaker-info line with missing columns: reported, and the speaker's
  meta comes from the published list; extra columns are kept as words of
  the last free-text column (VCTK region, LibriSpeech name);
* duplicate utterance IDs: the first copy is used, the others reported;
* NaN or inf samples: reported and skipped where audio is decoded (VCTK,
  LibriSpeech with ``convert_flac``); the header-only routes cannot see
  them;
* a trial naming an unknown utterance: an error naming the list and the
  utterance, or with ``allow_missing_trials`` a report line and the trial
  dropped.

Tests run as root, and chmod 000 does not stop root from reading: a broken
symbolic link, a folder and a named pipe named like audio files stand for
files that cannot be opened.

Authors
 * unipool-sv developers 2026
"""

import csv
import os
import pathlib
import re
import shutil
import sys
import textwrap
import types

import numpy as np
import processes
import pytest
import soundfile

from data_prep import common
from data_prep.librispeech import prepare_librispeech
from data_prep.mini_corpus import (
    write_mini_librispeech,
    write_mini_vctk,
    write_mini_voxceleb,
)
from data_prep.vctk import prepare_vctk, read_speaker_info
from data_prep.voxceleb import prepare_voxceleb

RATE = 16000
# Each hostile input gets its own utterance number (101, 102...).
KINDS = (
    "corrupt",
    "truncated",
    "empty",
    "zero_samples",
    "not_audio",
    "tiny",
    "broken_link",
    "folder",
    "silent",
    "short",
    "wrong_rate",
    "stereo",
)
NUMBERS = {kind: 101 + index for index, kind in enumerate(KINDS)}
OTHER_RATE = 22050
SECONDS = 0.4  # silent, wrong-rate and stereo files
SHORT_SECONDS = 0.08  # under any crop, over min_duration (0.05 s)
TINY_SECONDS = 0.01  # under min_duration
CORPORA = ("vctk", "librispeech", "librispeech_convert", "voxceleb")


# ------------------------------------------------------- hostile files
def _noise(seconds, rate, channels=1):
    rng = np.random.default_rng(round(seconds * 1000) + channels)
    return 0.3 * rng.uniform(-1, 1, (round(seconds * rate), channels))


def _write_zero_samples(path, rate):
    """A valid header announcing no samples (soundfile writes no FLAC of
    zero samples: its STREAMINFO is written by hand, count 0)."""
    if path.suffix == ".wav":
        soundfile.write(path, np.zeros(0), rate, "PCM_16")
        return
    soundfile.write(path, _noise(0.1, rate), rate, "PCM_16")
    data = path.read_bytes()
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first
    info = bytearray(data[8:42])
    info[13] &= 0xF0  # the 36-bit sample count: bits 108-143
    info[14:18] = bytes(4)
    path.write_bytes(b"fLaC\x80" + (34).to_bytes(3, "big") + bytes(info))


def _write_truncated(path, rate):
    soundfile.write(path, _noise(0.5, rate), rate, "PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 5])


WRITERS = {
    "corrupt": lambda path, rate: path.write_bytes(
        np.random.default_rng(1).bytes(3000)
    ),
    "truncated": _write_truncated,
    "empty": lambda path, rate: path.write_bytes(b""),
    "zero_samples": _write_zero_samples,
    "not_audio": lambda path, rate: path.write_text("ID,spk_id\na,b\n"),
    "tiny": lambda path, rate: soundfile.write(
        path, _noise(TINY_SECONDS, rate), rate, "PCM_16"
    ),
    "broken_link": lambda path, rate: path.symlink_to(
        path.with_name("nowhere" + path.suffix)
    ),
    "folder": lambda path, rate: path.mkdir(),
    "silent": lambda path, rate: soundfile.write(
        path, np.zeros(round(SECONDS * rate)), rate, "PCM_16"
    ),
    "short": lambda path, rate: soundfile.write(
        path, _noise(SHORT_SECONDS, rate), rate, "PCM_16"
    ),
    "wrong_rate": lambda path, rate: soundfile.write(
        path, _noise(SECONDS, OTHER_RATE), OTHER_RATE, "PCM_16"
    ),
    "stereo": lambda path, rate: soundfile.write(
        path, _noise(SECONDS, rate, channels=2), rate, "PCM_16"
    ),
}


def _write_hostiles(name_of, rate):
    """Writes every hostile file; returns ``{kind: (path, utterance id)}``.
    ``name_of(number)`` gives the path and ID of utterance ``number``."""
    hostiles = {}
    for kind, number in NUMBERS.items():
        path, utterance = name_of(number)
        WRITERS[kind](path, rate)
        hostiles[kind] = (path, utterance)
    return hostiles


def _write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)


def _read(path):
    with open(path, newline="") as source:
        return list(csv.DictReader(source))


def _result(corpus, paths, hostiles, good, strict):
    """What a test needs of one preparation run."""
    rows = {split: _read(paths[split]) for split in ("train", "valid", "test")}
    return types.SimpleNamespace(
        corpus=corpus,
        paths=paths,
        report=paths["problems"].read_text(),
        rows=rows,
        by_id={row["ID"]: row for split in rows.values() for row in split},
        hostiles=hostiles,
        good=good,
        strict=strict,
    )


# ----------------------------------------------------------------- VCTK
def _vctk_lists(folder, meta):
    roles = {
        "train": ["p225", "p226"],
        "valid": ["p227", "p228"],
        "test": ["p229", "p230"],
    }
    for role, speakers in roles.items():
        _write_csv(
            folder / "speakers" / f"speaker-{role}.csv",
            ["ID", "GENDER", "AGE", "ACCENTS", "REGION"],
            [
                [s, meta[s]["gender"], meta[s]["age"], meta[s]["accent"], "X"]
                for s in speakers
            ],
        )
    for role, (first, second) in (
        ("valid", ("p227", "p228")),
        ("test", ("p229", "p230")),
    ):
        _write_csv(
            folder / "trials" / f"trials-{role}.csv",
            ["LABEL", "SAMPLE1", "SAMPLE2"],
            [
                [1, f"{first}/{first}_025.wav", f"{first}/{first}_026.wav"],
                [0, f"{first}/{first}_025.wav", f"{second}/{second}_025.wav"],
                [0, f"{first}/{first}_099.wav", f"{second}/{second}_026.wav"],
            ],
        )
    return folder


@pytest.fixture(scope="module")
def vctk(tmp_path_factory):
    """VCTK 0.92 (6 speakers), hostile files of training speaker p225."""
    root = tmp_path_factory.mktemp("hostile_vctk").resolve()
    corpus = root / "VCTK"
    write_mini_vctk(
        corpus,
        n_speakers=6,
        utterances_per_speaker=3,
        n_shared=0,
        duration_range=(0.3, 0.4),
    )
    info = corpus / "speaker-info.txt"
    meta = read_speaker_info(info)
    # p225: two extra columns; p226: the age, gender and accent missing.
    lines = [
        line + "  extra  columns" if line.startswith("p225 ") else line
        for line in info.read_text().splitlines()
        if not line.startswith("p226 ")
    ]
    lines.append("p226  Surrey")
    info.write_text("\n".join(lines) + "\n")
    audio = corpus / "wav48_silence_trimmed" / "p225"
    hostiles = _write_hostiles(
        lambda n: (audio / f"p225_{n}_mic1.flac", f"p225_{n}"), 48000
    )
    # Both layouts: the 0.80 copy repeats the 0.92 utterance IDs.
    old = corpus / "wav48" / "p225"
    old.mkdir(parents=True)
    soundfile.write(old / "p225_025.wav", _noise(0.3, 48000), 48000)
    lists = _vctk_lists(root / "lists", meta)
    options = {"paper_lists": lists, "num_workers": 1, "vctk_release": "0.92"}
    paths = prepare_vctk(
        corpus, root / "prep", allow_missing_trials=True, **options
    )

    def strict(save_folder, **overrides):
        return prepare_vctk(corpus, save_folder, **{**options, **overrides})

    good = {f"p225_{n:03d}" for n in (25, 26, 27)}
    result = _result("vctk", paths, hostiles, good, strict)
    result.speaker_info = info
    result.unknown_trial = "p227/p227_099.wav"
    result.trial_list = (lists / "trials" / "trials-valid.csv", "valid", 3)
    result.duplicate = (corpus / "wav48", "0.92 files are used")
    return result


# ---------------------------------------------------------- LibriSpeech
def _librispeech_lists(folder):
    roles = {
        "train": [("100", "F"), ("101", "M")],
        "valid": [("102", "F"), ("103", "M")],
        "test": [("104", "F"), ("105", "M")],
    }
    for role, speakers in roles.items():
        _write_csv(
            folder / "speakers" / f"speaker-{role}.csv",
            ["ID", "SEX", "SUBSET"],
            [[s, sex, "x"] for s, sex in speakers],
        )
    for name, (first, second) in (
        ("trials-dev.csv", ("102", "103")),
        ("trials-test.csv", ("104", "105")),
    ):
        one, two = (
            f"{first}-{int(first) + 900}",
            f"{second}-{int(second) + 900}",
        )
        _write_csv(
            folder / "trials" / name,
            ["LABEL", "SAMPLE1", "SAMPLE2"],
            [
                [1, f"x/{one}-0000.wav", f"x/{one}-0001.wav"],
                [0, f"x/{one}-0000.wav", f"x/{two}-0000.wav"],
                [0, f"x/{one}-0099.wav", f"x/{two}-0001.wav"],
            ],
        )
    return folder


@pytest.fixture(scope="module")
def librispeech_corpus(tmp_path_factory):
    """LibriSpeech (6 speakers), hostile files of training speaker 100."""
    root = tmp_path_factory.mktemp("hostile_librispeech").resolve()
    corpus = pathlib.Path(
        write_mini_librispeech(
            root / "LibriSpeech",
            n_speakers=2,
            chapters_per_speaker=1,
            utterances_per_chapter=3,
            duration_range=(0.3, 0.4),
        )
    )
    speakers_txt = corpus / "SPEAKERS.TXT"
    lines = []
    for line in speakers_txt.read_text().splitlines():
        if line.startswith("100 "):  # SUBSET, MINUTES and NAME missing
            line = "100  | F"
        elif line.startswith("101 "):
            line += " | an extra | column"
        lines.append(line)
    speakers_txt.write_text("\n".join(lines) + "\n")
    chapter = corpus / "train-clean-100" / "100" / "1000"
    hostiles = _write_hostiles(
        lambda n: (chapter / f"100-1000-{n:04d}.flac", f"100-1000-{n:04d}"),
        RATE,
    )
    copy = corpus / "train-clean-360" / "100" / "1000" / "100-1000-0000.flac"
    copy.parent.mkdir(parents=True)
    shutil.copy(chapter / "100-1000-0000.flac", copy)
    options = {
        "paper_lists": _librispeech_lists(root / "lists"),
        "train_subsets": ("train-clean-100", "train-clean-360"),
        "valid_subsets": ("dev-clean",),
        "test_subsets": ("test-clean",),
        "num_workers": 1,
    }
    return root, corpus, hostiles, options


def _librispeech_run(corpus_setup, name, convert):
    root, corpus, hostiles, options = corpus_setup
    options = {**options, "convert_flac": convert}
    paths = prepare_librispeech(
        corpus, root / name, allow_missing_trials=True, **options
    )

    def strict(save_folder, **overrides):
        return prepare_librispeech(
            corpus, save_folder, **{**options, **overrides}
        )

    good = {f"100-1000-{n:04d}" for n in range(3)}
    result = _result(name, paths, hostiles, good, strict)
    result.speaker_info = corpus / "SPEAKERS.TXT"
    result.unknown_trial = "x/102-1002-0099.wav"
    trials = options["paper_lists"] / "trials" / "trials-dev.csv"
    result.trial_list = (trials, "valid", 3)
    copy = corpus / "train-clean-360" / "100" / "1000" / "100-1000-0000.flac"
    result.duplicate = (copy, "utterance 100-1000-0000 also in")
    return result


@pytest.fixture(scope="module")
def librispeech(librispeech_corpus):
    """LibriSpeech prepared with its FLAC files read in place."""
    return _librispeech_run(librispeech_corpus, "librispeech", False)


@pytest.fixture(scope="module")
def librispeech_convert(librispeech_corpus):
    """LibriSpeech prepared with ``convert_flac=True``."""
    return _librispeech_run(librispeech_corpus, "librispeech_convert", True)


# ------------------------------------------------------------ VoxCeleb
VOX_GROUPS = {
    "vox1-dev": ["id10001", "id10002"],
    "vox1-test": ["id10270", "id10271"],
    "vox2-test": ["id00017", "id00061"],
}


@pytest.fixture(scope="module")
def voxceleb(tmp_path_factory):
    """VoxCeleb (vox1 setting, two roots), hostile files of id10001."""
    root = tmp_path_factory.mktemp("hostile_voxceleb").resolve()
    corpus = pathlib.Path(
        write_mini_voxceleb(
            root / "vox",
            speakers=sum(VOX_GROUPS.values(), []),
            test_speakers=VOX_GROUPS["vox1-test"],
            videos_per_speaker=2,
            utterances_per_video=2,
            duration_range=(0.2, 0.3),
        )
    )
    for name, speakers in VOX_GROUPS.items():
        _write_csv(
            root / "lists" / "speakers" / f"speaker-{name}.csv",
            ["ID"],
            [[s] for s in speakers],
        )
    trials = root / "vox1_o.txt"
    trials.write_text(
        (corpus / "veri_test2.txt").read_text()
        + "1 id10270/NoSuchVideo/00001.wav id10270/NoSuchVideo/00002.wav\n"
    )
    speaker = corpus / "wav" / "id10001"
    first, second = sorted(p.name for p in speaker.iterdir())
    hostiles = _write_hostiles(
        lambda n: (
            speaker / first / f"{n:05d}.wav",
            f"id10001--{first}--{n:05d}",
        ),
        RATE,
    )
    # The same utterance ID twice: 00001.WAV beside 00001.wav, and a second
    # root holding id10001 again.
    shutil.copy(speaker / second / "00001.wav", speaker / second / "00001.WAV")
    copy = root / "vox_copy" / "wav" / "id10001" / first
    copy.mkdir(parents=True)
    shutil.copy(speaker / first / "00001.wav", copy / "00001.wav")
    options = {
        "paper_lists": root / "lists",
        "vox1_o_trials": trials,
        "n_vox2_trials_per_class": 8,
        "num_workers": 1,
        "progress": False,
    }
    roots = [corpus, root / "vox_copy"]
    paths = prepare_voxceleb(
        roots, root / "prep", allow_missing_trials=True, **options
    )

    def strict(save_folder, **overrides):
        return prepare_voxceleb(roots, save_folder, **{**options, **overrides})

    good = {
        f"id10001--{video}--{n:05d}"
        for video in (first, second)
        for n in (1, 2)
    }
    result = _result("voxceleb", paths, hostiles, good, strict)
    result.unknown_trial = "id10270--NoSuchVideo--00001"
    n_listed = len(trials.read_text().splitlines())
    result.trial_list = (trials, "test", n_listed)
    result.duplicate = (copy.parent, "speaker id10001 also in")
    result.case_duplicate = (speaker / second / "00001.WAV", speaker / second)
    return result


@pytest.fixture(params=CORPORA)
def run(request):
    """One preparation run on a corpus holding every hostile input."""
    return request.getfixturevalue(request.param)


# --------------------------------------------------------------- checks
def _report_line(run, path):
    """The one report line about ``path``."""
    lines = [
        line for line in run.report.splitlines() if line.startswith(f"{path}: ")
    ]
    assert len(lines) == 1, f"{path} not reported once in:\n{run.report}"
    return lines[0]


def _assert_skipped(run, kind, reason):
    """``kind``'s file is reported with ``reason`` and left out, while the
    good files of its speaker are used."""
    path, utterance = run.hostiles[kind]
    assert re.search(reason, _report_line(run, path)), run.report
    assert utterance not in run.by_id
    assert run.good <= set(run.by_id)


def _assert_kept(run, kind, samples, channels=1):
    """``kind``'s file is used, unreported, with ``samples`` at 16 kHz."""
    path, utterance = run.hostiles[kind]
    assert f"{path}: " not in run.report
    row = run.by_id[utterance]
    assert int(row["stop"]) == samples and int(row["start"]) == 0
    assert float(row["duration"]) == pytest.approx(samples / RATE)
    info = soundfile.info(row["wav"])
    assert (info.samplerate, info.channels) == (RATE, channels)
    assert info.frames == samples
    return row


def test_corrupt_audio(run):
    _assert_skipped(run, "corrupt", "unreadable audio")


def test_truncated_audio(run):
    _assert_skipped(run, "truncated", "truncated")


def test_zero_length_file(run):
    _assert_skipped(run, "empty", r"empty file \(0 bytes\)")


def test_zero_sample_audio(run):
    # A WAV of no samples; a FLAC whose header count is 0 ("unknown").
    _assert_skipped(run, "zero_samples", "no audio samples|gives no length")


def test_non_audio_file_with_an_audio_extension(run):
    _assert_skipped(run, "not_audio", "unreadable audio")


def test_paths_that_cannot_be_opened(run):
    _assert_skipped(run, "broken_link", "No such file|a broken link")
    _assert_skipped(run, "folder", "a folder")


def test_named_pipe_is_reported_not_waited_on(tmp_path):
    """Opening a FIFO for reading waits for a writer: the header reader
    must not, or a preparation hangs. Run in a subprocess with a timeout,
    so that a regression fails instead of hanging the suite."""
    os.mkfifo(tmp_path / "00001.wav")
    os.mkfifo(tmp_path / "p225_101_mic1.flac")
    video = tmp_path / "id10001" / "video"
    video.mkdir(parents=True)
    os.mkfifo(video / "00001.wav")
    soundfile.write(video / "00002.wav", _noise(0.1, RATE), RATE)
    script = textwrap.dedent(
        f"""
        from data_prep import common, scan
        report = common.ProblemReport()
        common.scan_audio([{str(tmp_path / "00001.wav")!r}], report)
        common.convert_audio_files(
            [({str(tmp_path / "p225_101_mic1.flac")!r}, "/nonexistent.wav")],
            problems=report,
        )
        summary = scan.scan_speakers(
            {{"id10001": {str(tmp_path / "id10001")!r}}},
            {str(tmp_path / "cache")!r},
            progress=False,
        )
        print("\\n".join(report.lines() + summary.problems))
        print("rows", summary.n_files)
        """
    )
    done = processes.run([sys.executable, "-c", script], 60, merge=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "rows 1"
    pipes = [tmp_path / "00001.wav", tmp_path / "p225_101_mic1.flac"]
    for pipe in [*pipes, video / "00001.wav"]:
        assert any(
            line.startswith(f"{pipe}: unreadable audio (a pipe")
            for line in lines
        ), done.stdout


def test_file_under_min_duration(run):
    _assert_skipped(run, "tiny", r"only 0\.01 s long .* min_duration=0\.05")


def test_file_shorter_than_the_crop_is_kept(run):
    _assert_kept(run, "short", round(SHORT_SECONDS * RATE))


def test_silent_file_is_kept(run):
    row = _assert_kept(run, "silent", round(SECONDS * RATE))
    assert not np.any(soundfile.read(row["wav"])[0])


def test_wrong_sample_rate(run):
    if run.corpus in ("vctk", "librispeech_convert"):
        row = _assert_kept(run, "wrong_rate", round(SECONDS * RATE))
        assert pathlib.Path(row["wav"]).is_relative_to(
            run.paths["train"].parent / "wav16k"
        )
    elif run.corpus == "librispeech":
        _assert_skipped(run, "wrong_rate", "sampled at 22050 Hz.*convert_flac")
    else:
        _assert_skipped(run, "wrong_rate", "sample rate 22050, expected 16000")


def test_stereo(run):
    converted = run.corpus in ("vctk", "librispeech_convert")
    _assert_kept(
        run, "stereo", round(SECONDS * RATE), channels=1 if converted else 2
    )


@pytest.mark.parametrize("corpus", CORPORA[:3])  # VoxCeleb reads no meta
def test_speaker_info_with_missing_and_extra_columns(corpus, request):
    run = request.getfixturevalue(corpus)
    lines = run.speaker_info.read_text().splitlines()
    if corpus == "vctk":
        missing, extra, expected = "p226", "p225", "ID AGE GENDER ACCENTS"
        number = len(lines)  # the line of p226, moved last
    else:
        missing, extra, expected = "100", "101", "ID | SEX | SUBSET"
        number = 1 + next(
            i for i, line in enumerate(lines) if line.startswith("100 ")
        )
    line = _report_line(run, f"{run.speaker_info}:{number}")
    assert expected in line and line.endswith("line skipped")
    rows = [r for r in run.rows["train"] if r["spk_id"] in (missing, extra)]
    assert {r["spk_id"] for r in rows} == {missing, extra}
    genders = {r["spk_id"]: r["gender"] for r in rows}
    if corpus == "vctk":
        # The extra words join the free-text region; the published list
        # gives the meta of the speaker whose line was skipped.
        assert all(
            r["region"].endswith("extra columns")
            for r in rows
            if r["spk_id"] == extra
        )
        assert {r["region"] for r in rows if r["spk_id"] == missing} == {"X"}
    else:
        assert genders == {missing: "F", extra: "M"}


def test_duplicate_utterance_ids(run):
    where, reason = run.duplicate
    assert reason in _report_line(run, where)
    for split, rows in run.rows.items():
        ids = [row["ID"] for row in rows]
        assert len(ids) == len(set(ids)), split
    assert run.good <= set(run.by_id)
    if run.corpus == "voxceleb":
        upper, video = run.case_duplicate
        lower = video / "00001.wav"
        utterance = f"id10001--{video.name}--00001"
        used = pathlib.Path(run.by_id[utterance]["wav"])
        dropped = lower if used == upper else upper
        assert used in (upper, lower)
        assert f"same utterance ID as {used}" in _report_line(run, dropped)


def test_trial_list_naming_unknown_utterances(run, tmp_path):
    trial_list, split, n_listed = run.trial_list
    # Allowed: reported, that trial dropped, the others kept.
    lines = [ln for ln in run.report.splitlines() if run.unknown_trial in ln]
    assert len(lines) == 1, run.report
    assert lines[0].startswith(f"{trial_list}: 1 trial(s)")
    assert lines[0].endswith("those trials dropped")
    trials = _read(run.paths[f"{split}_trials"])
    assert len(trials) == n_listed - 1
    # Not allowed: an error naming the list and the utterance.
    with pytest.raises(ValueError, match="allow_missing_trials") as error:
        run.strict(tmp_path / "strict")
    message = str(error.value)
    assert message.startswith(f"{trial_list}: ")
    assert run.unknown_trial in message


@pytest.mark.parametrize("corpus", ("vctk", "librispeech", "voxceleb"))
def test_speaker_list_without_id_column(corpus, request, tmp_path):
    """A published speaker list must hold an ID column: an error names it."""
    run = request.getfixturevalue(corpus)
    lists = tmp_path / "lists"
    shutil.copytree(run.paths["train"].parents[1] / "lists", lists)
    broken = sorted((lists / "speakers").iterdir())[0]
    rows = broken.read_text().splitlines()
    broken.write_text("\n".join(["SPEAKER" + rows[0][2:], *rows[1:]]) + "\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(broken))}: no ID"):
        run.strict(tmp_path / "prep", paper_lists=lists)


def test_non_finite_samples_are_reported(tmp_path):
    """A float WAV holding NaN is refused where audio is decoded
    (conversion); header-only routes cannot see it."""
    source = tmp_path / "p225_101.wav"
    samples = _noise(0.2, 48000)
    samples[100] = np.nan
    soundfile.write(source, samples, 48000, "FLOAT")
    report = common.ProblemReport()
    done = common.convert_audio_files(
        [(source, tmp_path / "out.wav")], problems=report
    )
    assert done == {} and not (tmp_path / "out.wav").exists()
    assert report.lines() == [
        f"{source}: corrupt audio, holds NaN or inf samples; file skipped"
    ]
