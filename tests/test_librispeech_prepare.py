"""Tests of data_prep.librispeech: the published lists, the real sample read
in place, generated mini corpora (both split sources, the paper route on
trimmed copies of the lists), skip/redo, atomic writes and the problems
report; and of the mini LibriSpeech writer."""

import collections
import csv
import pathlib

import numpy as np
import pytest
import soundfile
from speechbrain.dataio import audio_io

from data_prep import common
from data_prep.librispeech import (
    PAPER_TRIALS,
    find_utterances,
    prepare_librispeech,
    read_speakers_txt,
)
from data_prep.mini_corpus import (
    main as mini_corpus_main,
    write_mini_librispeech,
)
from data_prep.trials import (
    read_paper_speakers,
    read_paper_trials,
    read_trials_csv,
)

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared/data"
PAPER = SHARED / "paper_splits/LibriSpeech/preprocess"
REAL = SHARED / "librispeech_real_sample"
needs_paper = pytest.mark.skipif(
    not PAPER.is_dir(), reason="published lists not found at ../shared"
)
needs_real = pytest.mark.skipif(
    not (REAL.is_dir() and PAPER.is_dir()),
    reason="real LibriSpeech sample not found at ../shared",
)
MANIFEST_HEADER = [
    "ID",
    "duration",
    "wav",
    "start",
    "stop",
    "spk_id",
    "gender",
    "subset",
]
SHORT = (0.3, 0.5)
ONE_SUBSET_EACH = {
    "train_subsets": ("train-clean-100",),
    "valid_subsets": ("dev-clean",),
    "test_subsets": ("test-clean",),
}


def _read(path):
    with open(path, newline="") as source:
        return list(csv.DictReader(source))


def _stamps(folder):
    return {
        p: p.stat().st_mtime_ns
        for p in pathlib.Path(folder).rglob("*")
        if p.is_file()
    }


def _check_outputs(paths, speakers_txt):
    """The invariants every prepared LibriSpeech folder satisfies."""
    genders = {
        s: m["gender"]
        for s, m in read_speakers_txt(
            speakers_txt, common.ProblemReport()
        ).items()
    }
    manifests = {}
    for split in ("train", "valid", "test"):
        with open(paths[split]) as source:
            assert source.readline().strip().split(",") == MANIFEST_HEADER
        manifests[split] = rows = _read(paths[split])
        assert rows, split
        for row in rows:
            speaker, chapter, _ = row["ID"].split("-")
            wav = pathlib.Path(row["wav"])
            assert speaker == row["spk_id"] and wav.is_absolute()
            assert wav.parts[-4:] == (
                row["subset"],
                speaker,
                chapter,
                row["ID"] + wav.suffix,
            )
            assert int(row["start"]) == 0
            assert float(row["duration"]) == pytest.approx(
                int(row["stop"]) / 16000, abs=1e-5
            )
            assert row["gender"] == genders[speaker]
    speakers = {
        split: {row["spk_id"] for row in rows}
        for split, rows in manifests.items()
    }
    assert not speakers["train"] & (speakers["valid"] | speakers["test"])
    assert not speakers["valid"] & speakers["test"]
    for split in ("valid", "test"):
        trials = read_trials_csv(paths[f"{split}_trials"])
        used = {t[key] for t in trials for key in ("enrol", "test")}
        assert used == {row["ID"] for row in manifests[split]}
    return manifests


# ------------------------------------------------------ the published lists
@pytest.fixture(scope="module")
def published():
    if not PAPER.is_dir():
        pytest.skip("published lists not found at ../shared")
    speakers = {
        split: read_paper_speakers(PAPER / f"speakers/speaker-{split}.csv")
        for split in ("train", "valid", "test")
    }
    trials = {
        split: read_paper_trials(PAPER / "trials" / name)
        for split, name in PAPER_TRIALS.items()
    }
    problems = common.ProblemReport()
    info = read_speakers_txt(PAPER / "speakers/SPEAKERS.TXT", problems)
    assert len(problems) == 0
    return speakers, trials, info


def test_published_speaker_lists(published):
    speakers, _, info = published
    assert {s: len(rows) for s, rows in speakers.items()} == {
        "train": 2338,
        "valid": 73,
        "test": 73,
    }
    subsets = {
        split: collections.Counter(r["SUBSET"] for r in rows.values())
        for split, rows in speakers.items()
    }
    assert subsets["train"] == {
        "train-clean-100": 251,
        "train-clean-360": 921,
        "train-other-500": 1166,
    }
    # Not dev-clean / test-clean alone: 40 clean + 33 other speakers each.
    assert subsets["valid"] == {"dev-clean": 40, "dev-other": 33}
    assert subsets["test"] == {"test-clean": 40, "test-other": 33}
    every = [s for rows in speakers.values() for s in rows]
    # Disjoint, and together every speaker of SPEAKERS.TXT.
    assert len(every) == len(set(every)) == len(info) == 2484
    for rows in speakers.values():
        for speaker, row in rows.items():
            assert info[speaker]["gender"] == row["SEX"]
            assert info[speaker]["subset"] == row["SUBSET"]


def test_published_trial_lists(published):
    speakers, trials, info = published
    for split, rows in trials.items():
        labels = collections.Counter(t["label"] for t in rows)
        assert len(rows) == 36427 and labels == {1: 18031, 0: 18396}
        negatives = collections.Counter(
            t["gender_match"] for t in rows if t["label"] == 0
        )
        assert negatives == {1: 9072, 0: 9324}
        assert all(t["gender_match"] == 1 for t in rows if t["label"] == 1)
        assert all(t["sample_match"] == 0 for t in rows)
        ids = {t[key] for t in rows for key in ("enrol", "test")}
        trial_speakers = {i.split("-")[0] for i in ids}
        assert trial_speakers == set(speakers[split])
        # Every utterance of the two subsets: dev 2,703 + 2,864, test
        # 2,620 + 2,939.
        assert len(ids) == {"valid": 5567, "test": 5559}[split]
        pairs = {frozenset((t["enrol"], t["test"])) for t in rows}
        assert len(pairs) == len(rows) and all(len(p) == 2 for p in pairs)
        for trial in rows[:2000]:
            enrol, test = trial["enrol"].split("-")[0], trial["test"]
            test = test.split("-")[0]
            assert trial["label"] == int(enrol == test)
            same = info[enrol]["gender"] == info[test]["gender"]
            assert trial["gender_match"] == int(same)
            subset, speaker, file = trial["enrol_path"].split("/")
            assert subset == info[speaker]["subset"]
            assert file == trial["enrol"] + ".wav"


@needs_paper
def test_read_speakers_txt_of_the_corpus():
    info = read_speakers_txt(PAPER / "speakers/SPEAKERS.TXT")
    assert info["60"] == {
        "gender": "M",
        "subset": "train-clean-100",
        "minutes": 20.18,
        "name": "|CBW|Simon",
    }
    assert collections.Counter(m["gender"] for m in info.values()) == {
        "F": 1201,
        "M": 1283,
    }


def test_read_speakers_txt_bad_lines(tmp_path):
    path = tmp_path / "SPEAKERS.TXT"
    path.write_text(
        "; comment | with | bars | and | more\n"
        ";ID  |SEX| SUBSET           |MINUTES| NAME\n"
        "14   | F | train-clean-360  | 25.03 | Kristin LeMoine\n"
        "\n"
        "15   | X | train-clean-360  | 25.03 | Nobody\n"
        "x16  | F | dev-clean        | 8.00 | Somebody\n"
        "17   | M | dev-clean\n"
        "18   | M | dev-clean        | long | Someone\n"
        "14   | F | train-clean-360  | 25.03 | Kristin LeMoine\n"
    )
    problems = common.ProblemReport()
    info = read_speakers_txt(path, problems)
    assert list(info) == ["14"]
    lines = problems.lines()
    assert [line.split(": ")[0] for line in lines] == [
        f"{path}:{n}" for n in (5, 6, 7, 8, 9)
    ]
    assert "sex 'X'" in lines[0] and "listed twice" in lines[4]
    with pytest.raises(ValueError, match=r"SPEAKERS.TXT:5: sex 'X'"):
        read_speakers_txt(path)


# ------------------------------------------------------- the mini writer
def test_mini_librispeech_layout(tmp_path):
    corpus = pathlib.Path(
        write_mini_librispeech(
            tmp_path / "LS",
            n_speakers=2,
            chapters_per_speaker=2,
            utterances_per_chapter=2,
            duration_range=SHORT,
            subsets=("train-clean-100", "dev-other"),
        )
    )
    info = read_speakers_txt(corpus / "SPEAKERS.TXT")
    assert info["100"]["subset"] == "train-clean-100"
    assert info["103"]["subset"] == "dev-other"
    genders = [info[s]["gender"] for s in ("100", "101", "102", "103")]
    assert genders == ["F", "M", "F", "M"]  # alternating in each subset
    text = (corpus / "SPEAKERS.TXT").read_text()
    assert text.startswith("; Some pipe(|) separated metadata")
    assert ";ID  |SEX| SUBSET           |MINUTES| NAME\n" in text
    found = find_utterances(corpus, ["train-clean-100", "dev-other"])
    assert len(found) == 4 * 2 * 2
    chapter = corpus / "dev-other/103/1006"
    transcript = (chapter / "103-1006.trans.txt").read_text().splitlines()
    assert [line.split()[0] for line in transcript] == [
        "103-1006-0000",
        "103-1006-0001",
    ]
    assert transcript[0].split(" ", 1)[1].isupper()
    audio, rate = soundfile.read(chapter / "103-1006-0000.flac")
    header = soundfile.info(chapter / "103-1006-0000.flac")
    assert (rate, header.channels, header.format, header.subtype) == (
        16000,
        1,
        "FLAC",
        "PCM_16",
    )
    assert SHORT[0] <= len(audio) / rate <= SHORT[1] + 1e-3
    minutes = sum(
        soundfile.info(utt.path).duration
        for utt in found.values()
        if utt.speaker == "103"
    )
    assert info["103"]["minutes"] == pytest.approx(minutes / 60, abs=0.01)


def test_mini_librispeech_given_ids_and_command_line(tmp_path, capsys):
    corpus = write_mini_librispeech(
        tmp_path / "LS",
        subsets=("test-other",),
        speakers={"test-other": ["1688", "367"]},
        genders={"1688": "M", "367": "F"},
        utterance_ids={"1688": ["1688-142285-0007", "1688-142286-0001"]},
        chapters_per_speaker=1,
        utterances_per_chapter=1,
        duration_range=SHORT,
    )
    ids = sorted(find_utterances(corpus, ["test-other"]))
    assert ids == ["1688-142285-0007", "1688-142286-0001", "367-1000-0000"]
    info = read_speakers_txt(pathlib.Path(corpus) / "SPEAKERS.TXT")
    assert list(info) == ["367", "1688"]  # numeric order, as LibriSpeech
    assert info["1688"]["gender"] == "M" and info["367"]["gender"] == "F"
    with pytest.raises(ValueError, match="'1688-0007'"):
        write_mini_librispeech(
            tmp_path / "bad",
            subsets=("test-other",),
            speakers={"test-other": ["1688"]},
            utterance_ids={"1688": ["1688-0007"]},
        )
    mini_corpus_main(
        [
            "librispeech",
            "--out",
            str(tmp_path / "cli"),
            "--speakers",
            "1",
            "--chapters",
            "1",
            "--utterances",
            "2",
            "--subsets",
            "dev-clean",
            "test-clean",
        ]
    )
    assert "wrote 4 FLAC files of 2 speakers" in capsys.readouterr().out
    assert (tmp_path / "cli/test-clean/101/1001/101-1001-0001.flac").is_file()


# --------------------------------------------------------- generated route
@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("librispeech_generated")
    write_mini_librispeech(
        root / "LS",
        n_speakers=4,
        chapters_per_speaker=2,
        utterances_per_chapter=2,
        duration_range=SHORT,
        subsets=(
            "train-clean-100",
            "train-other-500",
            "dev-clean",
            "dev-other",
            "test-clean",
            "test-other",
        ),
        seed=3,
    )
    paths = prepare_librispeech(
        root / "LS",
        root / "prep",
        split_source="generate",
        train_subsets=("train-clean-100", "train-other-500"),
        num_workers=1,
    )
    return root, paths


def test_generated_route(generated):
    root, paths = generated
    manifests = _check_outputs(paths, root / "LS/SPEAKERS.TXT")
    subsets = {
        split: collections.Counter(row["subset"] for row in rows)
        for split, rows in manifests.items()
    }
    assert subsets == {
        "train": {"train-clean-100": 16, "train-other-500": 16},
        "valid": {"dev-clean": 16, "dev-other": 16},
        "test": {"test-clean": 16, "test-other": 16},
    }
    # FLAC read in place: header durations, no copies.
    for row in manifests["train"][:3]:
        assert row["wav"].endswith(".flac")
        assert pathlib.Path(row["wav"]).is_relative_to(root / "LS")
        assert int(row["stop"]) == len(soundfile.read(row["wav"])[0])
    assert not (root / "prep/wav16k").exists()
    for split in ("valid", "test"):
        trials = read_trials_csv(paths[f"{split}_trials"])
        labels = collections.Counter(t["label"] for t in trials)
        assert labels[0] == labels[1] > 0
        negatives = collections.Counter(
            t["gender_match"] for t in trials if t["label"] == 0
        )
        # 8 speakers, 4 F and 4 M: negatives split evenly between the
        # same-gender and the different-gender pairs.
        assert abs(negatives[1] - negatives[0]) <= 1
        assert set(trials[0]) == {"enrol", "test", "label", "gender_match"}
    assert paths["problems"].read_text() == ""


def test_skip_when_done_and_redo_when_options_change(generated, monkeypatch):
    root, paths = generated
    options = {
        "split_source": "generate",
        "train_subsets": ("train-clean-100", "train-other-500"),
        "num_workers": 1,
    }
    before = _stamps(root / "prep")

    def no_scan(*args, **kwargs):
        raise AssertionError("the preparation should have been skipped")

    monkeypatch.setattr("data_prep.librispeech.scan_audio", no_scan)
    again = prepare_librispeech(root / "LS", root / "prep", **options)
    assert again == paths and _stamps(root / "prep") == before
    monkeypatch.undo()

    trials = paths["test_trials"].read_text()
    prepare_librispeech(root / "LS", root / "prep", seed=7, **options)
    assert paths["test_trials"].read_text() != trials
    record = common.options_path(root / "prep", "librispeech").read_text()
    assert '"seed": 7' in record


def test_convert_flac_writes_wav_once(generated):
    root, _ = generated
    paths = prepare_librispeech(
        root / "LS",
        root / "prep_wav",
        split_source="generate",
        convert_flac=True,
        num_workers=1,
        **ONE_SUBSET_EACH,
    )
    manifests = _check_outputs(paths, root / "LS/SPEAKERS.TXT")
    for row in manifests["train"][:3]:
        wav = pathlib.Path(row["wav"])
        assert wav.is_relative_to(root / "prep_wav/wav16k")
        assert wav.suffix == ".wav"
        source = (
            root / "LS" / pathlib.Path(*wav.parts[-4:]).with_suffix(".flac")
        )
        converted, rate = soundfile.read(wav)
        original, _ = soundfile.read(source)
        assert rate == 16000 and len(converted) == int(row["stop"])
        assert np.abs(converted - original).max() < 1e-4
    stamps = {
        p: t
        for p, t in _stamps(root / "prep_wav").items()
        if p.suffix == ".wav"
    }
    prepare_librispeech(
        root / "LS",
        root / "prep_wav",
        split_source="generate",
        convert_flac=True,
        num_workers=1,
        seed=5,
        **ONE_SUBSET_EACH,
    )
    after = _stamps(root / "prep_wav")
    assert stamps and all(after[p] == t for p, t in stamps.items())


def test_crash_mid_write_leaves_no_partial_manifest(generated, monkeypatch):
    root, _ = generated
    prep = root / "prep_crash"
    options = {"split_source": "generate", "num_workers": 1, **ONE_SUBSET_EACH}

    class CrashingWriter(csv.DictWriter):
        """Killed at the third line of the first manifest (train.csv)."""

        def writerow(self, row):
            self.lines = getattr(self, "lines", 0) + 1
            if self.lines == 3:
                raise KeyboardInterrupt
            return super().writerow(row)

    monkeypatch.setattr(common.csv, "DictWriter", CrashingWriter)
    with pytest.raises(KeyboardInterrupt):
        prepare_librispeech(root / "LS", prep, **options)
    monkeypatch.undo()
    assert not (prep / "train.csv").exists()
    assert not common.options_path(prep, "librispeech").exists()
    assert not [p for p in prep.iterdir() if p.name.endswith(".tmp")]
    paths = prepare_librispeech(root / "LS", prep, **options)
    assert len(_read(paths["train"])) == 16


def test_problems_are_reported_and_good_files_used(tmp_path):
    corpus = pathlib.Path(
        write_mini_librispeech(
            tmp_path / "LS",
            n_speakers=3,
            chapters_per_speaker=1,
            utterances_per_chapter=3,
            duration_range=SHORT,
        )
    )
    broken = corpus / "train-clean-100/100/1000/100-1000-0001.flac"
    broken.write_bytes(b"fLaC\x00\x00 not really")
    misnamed = corpus / "train-clean-100/101/1001/101-9999-0000.flac"
    misnamed.write_bytes(broken.read_bytes())
    slow = corpus / "train-clean-100/102/1002/102-1002-0002.flac"
    soundfile.write(slow, np.zeros(800), 8000, "PCM_16")
    unknown = corpus / "train-clean-100/999/1999"
    unknown.mkdir(parents=True)
    soundfile.write(unknown / "999-1999-0000.flac", np.zeros(800), 16000)
    speakers_txt = corpus / "SPEAKERS.TXT"
    speakers_txt.write_text(
        speakers_txt.read_text() + "77   | Q | dev-clean | 1.0 | Q\n"
    )
    n_lines = len(speakers_txt.read_text().splitlines())
    paths = prepare_librispeech(
        corpus,
        tmp_path / "prep",
        split_source="generate",
        train_subsets=("train-clean-100", "train-clean-360"),
        valid_subsets=("dev-clean",),
        test_subsets=("test-clean",),
        num_workers=1,
    )
    report = paths["problems"].read_text()
    assert f"SPEAKERS.TXT:{n_lines}: sex 'Q'" in report
    assert f"{broken}: " in report and "unreadable" in report
    assert f"{misnamed}: not named" in report
    assert f"{slow}: sampled at 8000 Hz" in report
    assert "convert_flac=True" in report
    assert "train-clean-360: subset folder not found" in report
    assert f"{speakers_txt}: 1 speaker(s) have no line (e.g. 999)" in report
    manifests = _check_outputs(paths, speakers_txt)
    ids = {row["ID"] for rows in manifests.values() for row in rows}
    assert {"100-1000-0000", "100-1000-0002", "102-1002-0001"} <= ids
    assert not {"100-1000-0001", "102-1002-0002", "999-1999-0000"} & ids


def test_refuses_bad_arguments_and_empty_corpora(tmp_path):
    with pytest.raises(ValueError, match="split_source"):
        prepare_librispeech(tmp_path, tmp_path / "prep", split_source="x")
    with pytest.raises(ValueError, match=r"\['dev-clean'\] are given to"):
        prepare_librispeech(
            tmp_path,
            tmp_path / "prep",
            train_subsets=("dev-clean",),
        )
    with pytest.raises(ValueError, match="no usable LibriSpeech FLAC"):
        prepare_librispeech(
            tmp_path / "nowhere",
            tmp_path / "prep",
            split_source="generate",
        )
    report = (tmp_path / "prep/prepare_problems.txt").read_text()
    assert report.count("subset folder not found") == 7
    assert "SPEAKERS.TXT: missing" in report
    # Trials need a speaker with two utterances.
    write_mini_librispeech(
        tmp_path / "LS",
        n_speakers=2,
        chapters_per_speaker=1,
        utterances_per_chapter=1,
        duration_range=SHORT,
    )
    with pytest.raises(ValueError, match=r"valid subsets \['dev-clean'\]"):
        prepare_librispeech(
            tmp_path / "LS",
            tmp_path / "prep",
            split_source="generate",
            num_workers=1,
            **ONE_SUBSET_EACH,
        )


def test_skip_prep_returns_paths_only(tmp_path):
    paths = prepare_librispeech(
        tmp_path / "nowhere", tmp_path / "prep", skip_prep=True
    )
    assert paths["test_trials"] == (tmp_path / "prep/test_trials.csv").resolve()
    assert not (tmp_path / "prep").exists()


# ------------------------------------------------------------- paper route
VALID = ("84", "174", "116", "700")  # dev-clean F, M; dev-other M, F
TEST = ("61", "121", "367", "1688")  # test-clean M, F; test-other F, M


def _trim_lists(folder, train, n_per_kind=4):
    """Copies of the published lists with a few speakers and trials.

    Each trial list keeps ``n_per_kind`` positives and as many same- and
    different-gender negatives among the chosen speakers. Returns the
    genders and the utterance IDs the kept trials need, per speaker.
    """
    chosen = {"train": set(train), "valid": set(VALID), "test": set(TEST)}
    genders = {}
    for split, speakers in chosen.items():
        source = PAPER / "speakers" / f"speaker-{split}.csv"
        lines = source.read_text().splitlines()
        kept = [lines[0]]
        for line in lines[1:]:
            fields = line.split(",")
            if fields[0] in speakers:
                kept.append(line)
                genders[fields[0]] = fields[1]
        target = folder / "speakers" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(kept) + "\n")
    needed = collections.defaultdict(set)
    for split, name in PAPER_TRIALS.items():
        lines = (PAPER / "trials" / name).read_text().splitlines()
        picked = collections.defaultdict(list)
        for line in lines[1:]:
            label, first, second, _, gender_match = line.split(",")[:5]
            speakers = {first.split("/")[1], second.split("/")[1]}
            kind = (label, gender_match)
            if speakers <= chosen[split] and len(picked[kind]) < n_per_kind:
                picked[kind].append(line)
        kept = [line for kind in sorted(picked) for line in picked[kind]]
        target = folder / "trials" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join([lines[0]] + kept) + "\n")
        for line in kept:
            for path in line.split(",")[1:3]:
                needed[path.split("/")[1]].add(path.split("/")[2][:-4])
    return genders, {s: sorted(ids) for s, ids in needed.items()}


def _heldout_tree(root, needed, genders):
    """Mini dev/test subsets holding the utterances the trials name."""
    subsets = {}
    for split in ("valid", "test"):
        rows = read_paper_speakers(PAPER / f"speakers/speaker-{split}.csv")
        for speaker in VALID if split == "valid" else TEST:
            subsets.setdefault(rows[speaker]["SUBSET"], []).append(speaker)
    write_mini_librispeech(
        root,
        subsets=tuple(subsets),
        speakers=subsets,
        genders=genders,
        utterance_ids=needed,
        duration_range=SHORT,
    )


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory):
    """The real train-clean-100 sample (linked, read in place), the real
    SPEAKERS.TXT, and mini dev/test subsets with the published speakers."""
    if not (REAL.is_dir() and PAPER.is_dir()):
        pytest.skip("real LibriSpeech sample not found at ../shared")
    root = tmp_path_factory.mktemp("librispeech_real")
    real_speakers = sorted(p.name for p in (REAL / "train-clean-100").iterdir())
    # One listed training speaker whose audio is absent (train-clean-360).
    genders, needed = _trim_lists(root / "lists", real_speakers + ["14"])
    corpus = root / "LibriSpeech"
    _heldout_tree(corpus, needed, genders)
    (corpus / "SPEAKERS.TXT").unlink()
    (corpus / "SPEAKERS.TXT").symlink_to(REAL / "SPEAKERS.TXT")
    (corpus / "train-clean-100").symlink_to(REAL / "train-clean-100")
    return root, corpus, real_speakers


@needs_real
def test_real_sample_read_in_place():
    found = find_utterances(REAL, ["train-clean-100"])
    assert len(found) == 40 and len({u.speaker for u in found.values()}) == 40
    assert found["103-1240-0000"].path == (
        REAL / "train-clean-100/103/1240/103-1240-0000.flac"
    )
    info = read_speakers_txt(REAL / "SPEAKERS.TXT")
    assert all(
        info[u.speaker]["subset"] == "train-clean-100" for u in found.values()
    )


@needs_real
def test_paper_route_on_the_real_sample(real_tree):
    root, corpus, real_speakers = real_tree
    paths = prepare_librispeech(
        corpus, root / "prep", paper_lists=root / "lists", num_workers=1
    )
    manifests = _check_outputs(paths, REAL / "SPEAKERS.TXT")
    train = manifests["train"]
    assert len(train) == 40
    assert {row["spk_id"] for row in train} == set(real_speakers)
    assert {row["gender"] for row in train} == {"F", "M"}
    total = 0.0
    for row in train:
        real = REAL / pathlib.Path(*pathlib.Path(row["wav"]).parts[-4:])
        assert pathlib.Path(row["wav"]).resolve() == real.resolve()
        total += float(row["duration"])
    assert 470 < total < 490  # the sample's 8 minutes
    # The training pipeline reads the FLAC files directly.
    for row in train[:3]:
        signal, rate = audio_io.load(
            row["wav"], frame_offset=1600, num_frames=16000
        )
        full, _ = soundfile.read(row["wav"], dtype="float32")
        assert rate == 16000 and signal.shape == (1, 16000)
        np.testing.assert_allclose(signal[0].numpy(), full[1600:17600])
        assert len(full) == int(row["stop"])
    for split, name in PAPER_TRIALS.items():
        ours = read_trials_csv(paths[f"{split}_trials"])
        theirs = read_paper_trials(root / "lists/trials" / name)
        assert len(ours) == len(theirs) == 12
        for mine, paper in zip(ours, theirs, strict=True):
            assert mine == {
                k: v for k, v in paper.items() if not k.endswith("_path")
            }
    subsets = {row["subset"] for row in manifests["valid"]}
    assert subsets == {"dev-clean", "dev-other"}
    report = paths["problems"].read_text()
    assert "speaker-train.csv: 1 of its 41 speakers have no audio" in report
    assert "(e.g. 14)" in report


@needs_real
def test_generated_route_on_the_real_sample(real_tree):
    root, corpus, real_speakers = real_tree
    paths = prepare_librispeech(
        corpus,
        root / "prep_generated",
        split_source="generate",
        train_subsets=("train-clean-100", "train-clean-360"),
        num_workers=1,
    )
    manifests = _check_outputs(paths, REAL / "SPEAKERS.TXT")
    assert {row["spk_id"] for row in manifests["train"]} == set(real_speakers)
    for split, speakers in (("valid", VALID), ("test", TEST)):
        assert {row["spk_id"] for row in manifests[split]} == set(speakers)
        trials = read_trials_csv(paths[f"{split}_trials"])
        labels = collections.Counter(t["label"] for t in trials)
        assert labels[0] == labels[1] > 0
        negatives = collections.Counter(
            t["gender_match"] for t in trials if t["label"] == 0
        )
        assert abs(negatives[1] - negatives[0]) <= 1
    assert "train-clean-360: subset folder not found" in (
        paths["problems"].read_text()
    )


@needs_paper
def test_paper_route_missing_utterances_and_empty_split(real_tree):
    root, corpus, _ = real_tree
    lists = root / "lists_missing"
    for path in (root / "lists").rglob("*.csv"):
        target = lists / path.relative_to(root / "lists")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    trials = lists / "trials/trials-test.csv"
    extra = "1,test-clean/61/61-70968-0999.wav,test-clean/61/61-70968-0998.wav"
    trials.write_text(trials.read_text() + extra + ",0,1,0.9\n")
    with pytest.raises(ValueError, match=r"1 trial\(s\) name 2 utterance"):
        prepare_librispeech(corpus, root / "prep_missing", paper_lists=lists)
    paths = prepare_librispeech(
        corpus,
        root / "prep_missing",
        paper_lists=lists,
        allow_missing_trials=True,
        num_workers=1,
    )
    assert len(read_trials_csv(paths["test_trials"])) == 12
    assert "trials-test.csv: 1 trial(s)" in paths["problems"].read_text()

    train = lists / "speakers/speaker-train.csv"
    train.write_text("ID,SEX,SUBSET,MINUTES,NAME\n14,F,train-clean-360,1,K\n")
    with pytest.raises(ValueError, match="train split is empty"):
        prepare_librispeech(
            corpus,
            root / "prep_empty",
            paper_lists=lists,
            allow_missing_trials=True,
            num_workers=1,
        )
    report = (root / "prep_empty/prepare_problems.txt").read_text()
    assert "40 speaker(s) of the corpus are in none of the paper's" in report


def test_speaker_in_two_roles_is_left_out(tmp_path):
    corpus = write_mini_librispeech(
        tmp_path / "LS",
        speakers={
            "train-clean-100": ["100", "101", "102"],
            "dev-clean": ["100", "201", "202"],
            "test-clean": ["301", "302"],
        },
        chapters_per_speaker=1,
        utterances_per_chapter=2,
        duration_range=SHORT,
    )
    paths = prepare_librispeech(
        corpus,
        tmp_path / "prep",
        split_source="generate",
        num_workers=1,
        **ONE_SUBSET_EACH,
    )
    speakers = {
        split: {row["spk_id"] for row in _read(paths[split])}
        for split in ("train", "valid", "test")
    }
    assert speakers == {
        "train": {"101", "102"},
        "valid": {"201", "202"},
        "test": {"301", "302"},
    }
    report = paths["problems"].read_text()
    assert "1 speaker(s) found in the subsets of two roles (e.g. 100)" in report


@needs_paper
def test_paper_lists_sharing_a_speaker_are_refused(real_tree):
    root, corpus, _ = real_tree
    lists = root / "lists_shared"
    for path in (root / "lists").rglob("*.csv"):
        target = lists / path.relative_to(root / "lists")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    test = lists / "speakers/speaker-test.csv"
    test.write_text(test.read_text() + "84,F,dev-clean,8.02,Christie Nowak\n")
    with pytest.raises(ValueError, match="speaker-test.csv: speakers 84 are"):
        prepare_librispeech(corpus, root / "prep_shared", paper_lists=lists)
