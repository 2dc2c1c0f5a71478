"""Tests of data_prep.vctk on generated mini corpora (both VCTK layouts),
the paper route on trimmed copies of the published lists, skip/redo,
atomic writes and the problems report."""

import collections
import csv
import pathlib
import shutil

import pytest
import soundfile

from data_prep import common
from data_prep.mini_corpus import write_mini_vctk
from data_prep.trials import read_paper_trials, read_trials_csv
from data_prep.vctk import prepare_vctk, read_speaker_info

PAPER = (
    pathlib.Path(__file__).resolve().parents[2]
    / "shared/data/paper_splits/VCTK-Corpus/preprocess"
)
needs_paper = pytest.mark.skipif(
    not PAPER.is_dir(), reason="published lists not found at ../shared"
)
MANIFEST_HEADER = [
    "ID",
    "duration",
    "wav",
    "start",
    "stop",
    "spk_id",
    "gender",
    "age",
    "accent",
    "region",
]
SHORT = (0.3, 0.5)


def _read(path):
    with open(path, newline="") as source:
        return list(csv.DictReader(source))


def _header(path):
    return pathlib.Path(path).read_text().splitlines()[0].split(",")


def _stamps(folder):
    return {
        p: p.stat().st_mtime_ns
        for p in pathlib.Path(folder).rglob("*")
        if p.is_file()
    }


def _check_outputs(paths, corpus):
    """The invariants every prepared VCTK folder satisfies."""
    info = pathlib.Path(corpus) / "speaker-info.txt"
    speakers_meta = read_speaker_info(info, common.ProblemReport())
    manifests = {
        split: _read(paths[split]) for split in ("train", "valid", "test")
    }
    speakers = {}
    for split, rows in manifests.items():
        assert _header(paths[split]) == MANIFEST_HEADER
        assert rows, split
        speakers[split] = {row["spk_id"] for row in rows}
        for row in rows:
            speaker, number = row["ID"].split("_")
            assert speaker == row["spk_id"] and int(number) >= 25
            wav = pathlib.Path(row["wav"])
            assert wav.is_absolute() and wav.name == row["ID"] + ".wav"
            assert (
                wav.parent.name == speaker
                and wav.parent.parent.name == "wav16k"
            )
            assert int(row["start"]) == 0
            assert float(row["duration"]) == pytest.approx(
                int(row["stop"]) / 16000, abs=1e-4
            )
            meta = speakers_meta[speaker]
            assert (row["gender"], row["accent"]) == (
                meta["gender"],
                meta["accent"],
            )
    assert not speakers["train"] & (speakers["valid"] | speakers["test"])
    assert not speakers["valid"] & speakers["test"]
    for split in ("valid", "test"):
        trials = read_trials_csv(paths[f"{split}_trials"])
        used = {t[key] for t in trials for key in ("enrol", "test")}
        assert used == {row["ID"] for row in manifests[split]}
    return manifests


# ------------------------------------------------------------ speaker info
@needs_paper
def test_read_speaker_info_0_80_file_of_the_authors():
    problems = common.ProblemReport()
    info = read_speaker_info(PAPER / "speakers/speaker-info.txt", problems)
    assert len(problems) == 0 and len(info) == 109
    assert info["p234"] == {
        "gender": "F",
        "age": 22,
        "accent": "Scottish",
        "region": "West Dumfries",
    }
    assert info["p280"]["region"] == "France"  # comment dropped
    assert info["p362"]["region"] == "" and info["p376"]["accent"] == "Indian"
    listed = common.read_csv(PAPER / "speakers/speaker-valid.csv")
    for row in listed:
        assert info[row["ID"]]["gender"] == row["GENDER"]
        assert info[row["ID"]]["region"] == row["REGION"]


def test_read_speaker_info_0_92_style_and_bad_lines(tmp_path):
    path = tmp_path / "speaker-info.txt"
    path.write_text(
        "ID  AGE  GENDER  ACCENTS  REGION COMMENTS \n"
        "p225  23  F    English    Southern  England\n"
        "p315  23  M    American    New  England  (Text missing)\n"
        "s5  22  F    British    \n"
        "p999  xx  F    English    Nowhere\n"
        "p998  22\n"
        "p225  23  F    English    Southern  England\n"
    )
    problems = common.ProblemReport()
    info = read_speaker_info(path, problems)
    assert sorted(info) == ["p225", "p315", "s5"]
    assert info["p315"]["region"] == "New England"
    lines = problems.lines()
    assert [line.split(": ")[0] for line in lines] == [
        f"{path}:5",
        f"{path}:6",
        f"{path}:7",
    ]
    assert "age 'xx'" in lines[0] and "twice" in lines[2]
    with pytest.raises(ValueError, match=r"speaker-info.txt:5: age"):
        read_speaker_info(path)


# --------------------------------------------------------- generated route
@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("vctk_generated")
    speakers = [f"p{225 + i}" for i in range(12)] + ["p280"]
    corpus = write_mini_vctk(
        root / "VCTK",
        speakers=speakers,
        utterances_per_speaker=4,
        duration_range=SHORT,
        seed=5,
    )
    paths = prepare_vctk(
        root / "VCTK", root / "prep", split_source="generate", num_workers=1
    )
    return root, corpus, paths


def test_generated_route_0_92(generated):
    root, corpus, paths = generated
    manifests = _check_outputs(paths, corpus)
    speakers = {
        split: sorted({row["spk_id"] for row in rows})
        for split, rows in manifests.items()
    }
    # 12 speakers (p280 dropped): held-out counts scaled to 2 + 2.
    assert [len(speakers[s]) for s in ("train", "valid", "test")] == [8, 2, 2]
    assert "p280" not in sum(speakers.values(), [])
    assert len(manifests["train"]) == 8 * 4
    # Audio: 16 kHz mono, same duration as the 48 kHz source.
    for row in manifests["train"][:5]:
        info = soundfile.info(row["wav"])
        assert (info.samplerate, info.channels) == (16000, 1)
        source = (
            root
            / "VCTK/wav48_silence_trimmed"
            / row["spk_id"]
            / f"{row['ID']}_mic1.flac"
        )
        assert abs(info.duration - soundfile.info(source).duration) < 1 / 16000
    for split in ("valid", "test"):
        trials = read_trials_csv(paths[f"{split}_trials"])
        labels = collections.Counter(t["label"] for t in trials)
        assert labels[0] == labels[1] > 0
        assert _header(paths[f"{split}_trials"])[:4] == [
            "enrol",
            "test",
            "label",
            "gender_match",
        ]
    assert paths["problems"].read_text() == ""


def test_generated_route_0_80(tmp_path):
    corpus = write_mini_vctk(
        tmp_path / "VCTK",
        n_speakers=6,
        utterances_per_speaker=3,
        layout="0.80",
        duration_range=SHORT,
    )
    paths = prepare_vctk(
        tmp_path / "VCTK",
        tmp_path / "prep",
        split_source="generate",
        num_workers=1,
    )
    manifests = _check_outputs(paths, corpus)
    assert {row["ID"] for row in manifests["train"]} <= {
        f"p{225 + i}_{n:03d}" for i in range(6) for n in (25, 26, 27)
    }


def test_skip_when_done_and_redo_when_options_change(generated, monkeypatch):
    root, corpus, paths = generated
    before = _stamps(root / "prep")

    def no_conversion(*args, **kwargs):
        raise AssertionError("the preparation should have been skipped")

    monkeypatch.setattr("data_prep.vctk.convert_audio_files", no_conversion)
    again = prepare_vctk(
        root / "VCTK", root / "prep", split_source="generate", num_workers=1
    )
    assert again == paths and _stamps(root / "prep") == before
    monkeypatch.undo()

    prepare_vctk(
        root / "VCTK", root / "prep2", split_source="generate", num_workers=1
    )
    wav_stamps = {
        p: t for p, t in _stamps(root / "prep2").items() if p.suffix == ".wav"
    }
    prepare_vctk(
        root / "VCTK",
        root / "prep2",
        split_source="generate",
        num_workers=1,
        seed=99,
    )
    after = _stamps(root / "prep2")
    # New options: manifests rewritten, converted audio reused.
    assert after[root / "prep2/train.csv"] != before[root / "prep/train.csv"]
    assert all(after[p] == t for p, t in wav_stamps.items())
    record = common.options_path(root / "prep2", "vctk").read_text()
    assert '"seed": 99' in record


def test_crash_mid_write_leaves_no_partial_manifest(tmp_path, monkeypatch):
    write_mini_vctk(
        tmp_path / "VCTK",
        n_speakers=6,
        utterances_per_speaker=3,
        duration_range=SHORT,
    )
    options = {"split_source": "generate", "num_workers": 1}

    class CrashingWriter(csv.DictWriter):
        """Killed at the third line of the first manifest (train.csv)."""

        def writerow(self, row):
            self.lines = getattr(self, "lines", 0) + 1
            if self.lines == 3:
                raise KeyboardInterrupt
            return super().writerow(row)

    monkeypatch.setattr(common.csv, "DictWriter", CrashingWriter)
    with pytest.raises(KeyboardInterrupt):
        prepare_vctk(tmp_path / "VCTK", tmp_path / "prep", **options)
    monkeypatch.undo()
    prep = tmp_path / "prep"
    assert not (prep / "train.csv").exists()
    assert not common.options_path(prep, "vctk").exists()
    assert not [p for p in prep.iterdir() if p.name.endswith(".tmp")]
    # The next run redoes the work and completes.
    paths = prepare_vctk(tmp_path / "VCTK", prep, **options)
    rows = _read(paths["train"])
    assert len(rows) == 2 * 3  # 6 speakers: 2 train, 2 valid, 2 test

    # A crash while redoing with new options keeps the old, complete files
    # and makes the next run redo (no options record left behind).
    monkeypatch.setattr(common.csv, "DictWriter", CrashingWriter)
    with pytest.raises(KeyboardInterrupt):
        prepare_vctk(tmp_path / "VCTK", prep, seed=7, **options)
    monkeypatch.undo()
    assert _read(paths["train"]) == rows
    assert not common.is_prepared(prep, "vctk", {}, [])
    assert not common.options_path(prep, "vctk").exists()


def test_problems_are_reported_and_good_files_used(tmp_path):
    corpus = write_mini_vctk(
        tmp_path / "VCTK",
        n_speakers=8,
        utterances_per_speaker=3,
        duration_range=SHORT,
    )
    audio = tmp_path / "VCTK/wav48_silence_trimmed"
    broken = audio / "p227/p227_026_mic1.flac"
    broken.write_bytes(b"fLaC\x00\x00 not really")
    shutil.copytree(audio / "p228", audio / "p998")  # no speaker-info line
    info = tmp_path / "VCTK/speaker-info.txt"
    info.write_text(info.read_text() + "p999  xx  F    English    Nowhere\n")
    n_lines = len(info.read_text().splitlines())
    paths = prepare_vctk(
        tmp_path / "VCTK",
        tmp_path / "prep",
        split_source="generate",
        num_workers=1,
    )
    report = paths["problems"].read_text()
    assert str(broken) in report
    assert f"speaker-info.txt:{n_lines}: age 'xx'" in report
    assert "p998" in report and "unknown speaker" in report
    manifests = _check_outputs(paths, corpus)
    ids = {row["ID"] for rows in manifests.values() for row in rows}
    assert "p227_026" not in ids
    assert {"p227_025", "p227_027"} & ids  # its good files are used
    assert not any(i.startswith("p998") for i in ids)


def test_refuses_a_corpus_without_usable_audio(tmp_path):
    write_mini_vctk(
        tmp_path / "VCTK",
        n_speakers=6,
        utterances_per_speaker=1,
        duration_range=SHORT,
    )
    with pytest.raises(ValueError, match="no usable 0.92 audio"):
        prepare_vctk(
            tmp_path / "VCTK",
            tmp_path / "prep",
            split_source="generate",
            mic="mic2",
        )
    report = (tmp_path / "prep/prepare_problems.txt").read_text()
    assert report.count("no file named like") == 6


def test_refuses_folder_without_vctk(tmp_path):
    with pytest.raises(ValueError, match="wav48_silence_trimmed"):
        prepare_vctk(tmp_path, tmp_path / "prep", split_source="generate")
    with pytest.raises(ValueError, match="split_source"):
        prepare_vctk(tmp_path, tmp_path / "prep", split_source="random")


def test_skip_prep_returns_paths_only(tmp_path):
    paths = prepare_vctk(
        tmp_path / "nowhere", tmp_path / "prep", skip_prep=True
    )
    assert paths["train"] == (tmp_path / "prep/train.csv").resolve()
    assert not (tmp_path / "prep").exists()


# ------------------------------------------------------------- paper route
def _trim_lists(folder, n_trials=6):
    """A copy of the published lists with a few speakers and trials."""
    chosen = {
        "train": ["p257", "p275", "p243", "p280"],
        "valid": ["p263", "p239", "p237"],
        "test": ["p329", "p313", "p231"],
    }
    for split, speakers in chosen.items():
        source = PAPER / "speakers" / f"speaker-{split}.csv"
        lines = source.read_text().splitlines()
        kept = [lines[0]] + [
            ln for ln in lines[1:] if ln.split(",")[0] in speakers
        ]
        target = folder / "speakers" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(kept) + "\n")
    needed = collections.defaultdict(set)
    for split in ("valid", "test"):
        source = PAPER / "trials" / f"trials-{split}.csv"
        lines = source.read_text().splitlines()
        picked = {0: [], 1: []}
        for line in lines[1:]:
            label, first, second = line.split(",")[:3]
            speakers = {first.split("/")[0], second.split("/")[0]}
            if (
                speakers <= set(chosen[split])
                and len(picked[int(label)]) < n_trials
            ):
                picked[int(label)].append(line)
        target = folder / "trials" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join([lines[0]] + picked[1] + picked[0]) + "\n")
        for line in picked[1] + picked[0]:
            for path in line.split(",")[1:3]:
                speaker, name = path.split("/")
                needed[speaker].add(int(name[5:8]))
    return chosen, {s: sorted(n) + [3] for s, n in needed.items()}


@pytest.fixture(scope="module")
def paper_setup(tmp_path_factory):
    if not PAPER.is_dir():
        pytest.skip("published lists not found at ../shared")
    root = tmp_path_factory.mktemp("vctk_paper")
    chosen, numbers = _trim_lists(root / "lists")
    speakers = sum(chosen.values(), []) + ["p400"]
    corpus = write_mini_vctk(
        root / "VCTK",
        speakers=speakers,
        utterance_numbers=numbers,
        utterances_per_speaker=3,
        duration_range=SHORT,
    )
    return root, chosen, corpus


@needs_paper
def test_paper_route_on_trimmed_lists(paper_setup):
    root, chosen, corpus = paper_setup
    paths = prepare_vctk(
        root / "VCTK", root / "prep", paper_lists=root / "lists", num_workers=1
    )
    manifests = _check_outputs(paths, corpus)
    train_speakers = {row["spk_id"] for row in manifests["train"]}
    # The published lists keep p280 (72 training speakers): so do we.
    assert train_speakers == set(chosen["train"])
    for split in ("valid", "test"):
        ours = read_trials_csv(paths[f"{split}_trials"])
        theirs = read_paper_trials(
            root / "lists/trials" / f"trials-{split}.csv"
        )
        assert len(ours) == len(theirs) == 12
        for mine, paper in zip(ours, theirs, strict=True):
            for key, value in mine.items():
                assert paper[key] == value
    report = paths["problems"].read_text()
    assert "p400" in report and "not in the paper's speaker lists" in report


@needs_paper
def test_paper_route_with_the_texts_exclusions(paper_setup):
    """Excluding p280 as the paper's text says is reported, not silent."""
    root, chosen, _ = paper_setup
    paths = prepare_vctk(
        root / "VCTK",
        root / "prep_excluded",
        paper_lists=root / "lists",
        excluded_speakers=("p280", "p315"),
        num_workers=1,
    )
    manifest = common.read_csv(paths["train"])
    assert {row["spk_id"] for row in manifest} == set(chosen["train"]) - {
        "p280"
    }
    report = paths["problems"].read_text()
    assert (
        "p280: in the paper's speaker lists but in excluded_speakers" in report
    )


@needs_paper
def test_paper_lists_from_a_url(paper_setup, monkeypatch):
    root, _, _ = paper_setup
    fetched = []

    def fake_download(source, dest):
        fetched.append(source)
        relative = source.removeprefix("https://example.org/pre/")
        shutil.copy(root / "lists" / relative, dest)

    monkeypatch.setattr(
        "speechbrain.utils.data_utils.download_file", fake_download
    )
    paths = prepare_vctk(
        root / "VCTK",
        root / "prep_url",
        paper_lists="https://example.org/pre/",
        num_workers=1,
    )
    assert sorted(fetched) == [
        "https://example.org/pre/speakers/speaker-test.csv",
        "https://example.org/pre/speakers/speaker-train.csv",
        "https://example.org/pre/speakers/speaker-valid.csv",
        "https://example.org/pre/trials/trials-test.csv",
        "https://example.org/pre/trials/trials-valid.csv",
    ]
    assert (root / "prep_url/paper_lists/trials/trials-test.csv").is_file()
    assert len(read_trials_csv(paths["valid_trials"])) == 12


@needs_paper
def test_paper_route_missing_utterances(paper_setup):
    root, _, _ = paper_setup
    lists = root / "lists_missing"
    shutil.copytree(root / "lists", lists)
    trials = lists / "trials/trials-test.csv"
    extra = "1,p329/p329_399.wav,p329/p329_398.wav,0,1,1,1,1,0,0.9\n"
    trials.write_text(trials.read_text() + extra)
    with pytest.raises(
        ValueError, match=r"1 trial\(s\) name 2 utterance"
    ) as error:
        prepare_vctk(root / "VCTK", root / "prep_missing", paper_lists=lists)
    assert "p329/p329_398.wav" in str(error.value)
    paths = prepare_vctk(
        root / "VCTK",
        root / "prep_missing",
        paper_lists=lists,
        allow_missing_trials=True,
        num_workers=1,
    )
    assert len(read_trials_csv(paths["test_trials"])) == 12
    assert "trials-test.csv: 1 trial(s)" in paths["problems"].read_text()


@needs_paper
def test_paper_route_refuses_an_empty_split(paper_setup):
    root, _, _ = paper_setup
    lists = root / "lists_empty"
    shutil.copytree(root / "lists", lists)
    train = lists / "speakers/speaker-train.csv"
    header = train.read_text().splitlines()[0]
    train.write_text(header + "\np500,434,English,F,23,1.0,Fife,21,400\n")
    with pytest.raises(ValueError, match="train split is empty"):
        prepare_vctk(
            root / "VCTK", root / "prep_empty", paper_lists=lists, num_workers=1
        )
    problems = (root / "prep_empty/prepare_problems.txt").read_text()
    assert "p500" in problems and "no audio folder" in problems


def _both_releases(root):
    """A mini VCTK 0.92 with the 0.80 layout of other speakers beside it."""
    corpus = write_mini_vctk(
        root / "VCTK",
        n_speakers=6,
        utterances_per_speaker=3,
        duration_range=(0.3, 0.5),
    )
    old = write_mini_vctk(
        root / "old",
        n_speakers=6,
        utterances_per_speaker=4,
        duration_range=(0.3, 0.5),
        layout="0.80",
    )
    shutil.copytree(pathlib.Path(old) / "wav48", pathlib.Path(corpus) / "wav48")
    return pathlib.Path(corpus)


def _utterances(paths):
    return {row["ID"] for split in SPLITS for row in _read(paths[split])}


SPLITS = ("train", "valid", "test")


def test_the_paper_release_is_preferred(tmp_path, caplog):
    """Both layouts present: 0.80 (the authors' audio) by default, 0.92 on
    request (before: 0.92 always); 0.92 alone is used with a warning that
    it is not the paper's audio."""
    corpus = _both_releases(tmp_path)
    options = {"split_source": "generate", "num_workers": 1}
    paths = prepare_vctk(corpus, tmp_path / "paper", **options)
    assert all(u.count("_") == 1 for u in _utterances(paths))
    assert len(_utterances(paths)) == 6 * 4
    report = pathlib.Path(paths["problems"]).read_text()
    assert "the 0.80 files are used (vctk_release: paper)" in report

    with caplog.at_level("WARNING"):
        newer = prepare_vctk(
            corpus, tmp_path / "newer", vctk_release="0.92", **options
        )
    assert len(_utterances(newer)) == 6 * 3
    assert "is not the audio of the UniPool paper" in caplog.text

    shutil.rmtree(corpus / "wav48")
    with pytest.raises(ValueError, match=r"'wav48/' \(VCTK 0.80"):
        prepare_vctk(corpus, tmp_path / "old", vctk_release="0.80", **options)
    with pytest.raises(ValueError, match="vctk_release: '0.91'"):
        prepare_vctk(corpus, tmp_path / "bad", vctk_release="0.91", **options)
