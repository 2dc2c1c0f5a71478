"""Tests of data_prep.voxceleb and data_prep.scan on generated mini trees.

The published lists parse to the counts of the paper; both settings are
prepared from a mini corpus spread over two roots in two layouts, with
trimmed copies of the lists; skip/redo, resumable and memory-bounded
scanning, the problems report, the m4a conversion (with a fake ffmpeg) and
the mini corpus writer are checked.
"""

import collections
import csv
import itertools
import json
import os
import pathlib
import stat
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile
from scipy import signal

from data_prep import common, scan
from data_prep.mini_corpus import (
    main as mini_corpus_main,
    write_mini_voxceleb,
)
from data_prep.trials import (
    balanced_trials,
    read_trials_csv,
    read_voxceleb_trials,
    write_voxceleb_trials,
)
from data_prep.voxceleb import (
    convert_m4a,
    find_speaker_folders,
    main as voxceleb_main,
    parse_data_folders,
    prepare_voxceleb,
    read_trial_list,
)

PAPER = (
    pathlib.Path(__file__).resolve().parents[2]
    / "shared/data/paper_splits/VoxCeleb/preprocess"
)
needs_paper = pytest.mark.skipif(
    not PAPER.is_dir(), reason="published lists not found at ../shared"
)
MANIFEST_HEADER = ["ID", "duration", "wav", "start", "stop", "spk_id", "video"]
SHORT = (0.2, 0.3)
# Real IDs of each published list (checked by a test below).
GROUPS = {
    "vox1-dev": ["id11227", "id10424", "id10015", "id10001"],
    "vox1-test": ["id10276", "id10297", "id10274"],
    "vox2-dev": ["id07273", "id03778", "id00823"],
    "vox2-test": ["id07494", "id04656", "id06104"],
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


def _write_lists(folder, vox1_o_text):
    """Speaker lists of GROUPS (trimmed copies of the published lists when
    they are at hand) and a Vox1-O list over the mini corpus in the
    authors' form."""
    for name, speakers in GROUPS.items():
        path = folder / "speakers" / f"speaker-{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["ID", *speakers]
        if PAPER.is_dir():
            published = (PAPER / "speakers" / path.name).read_text()
            lines = [ln for ln in published.splitlines() if ln in lines]
            assert len(lines) == 1 + len(speakers), name
        path.write_text("\n".join(lines) + "\n")
    lines = ["LABEL,SAMPLE1,SAMPLE2"]
    for line in pathlib.Path(vox1_o_text).read_text().splitlines():
        label, enrol, test = line.split()
        lines.append(f"{label},vox1_test_wav/{enrol},vox1_test_wav/{test}")
    (folder / "trials").mkdir(parents=True, exist_ok=True)
    (folder / "trials" / "trials-vox1.csv").write_text("\n".join(lines) + "\n")
    return folder


def _write_corpus(root):
    """Vox1 in SpeechBrain's layout, Vox2 in the authors' layout."""
    vox1 = write_mini_voxceleb(
        root / "vox1",
        speakers=GROUPS["vox1-dev"] + GROUPS["vox1-test"],
        test_speakers=GROUPS["vox1-test"],
        videos_per_speaker=2,
        utterances_per_video=2,
        duration_range=SHORT,
        n_trials_per_class=10,
        seed=1,
    )
    for subset in ("dev", "test"):
        write_mini_voxceleb(
            root / "vox2",
            speakers=GROUPS[f"vox2-{subset}"],
            test_speakers=(),
            videos_per_speaker=2,
            utterances_per_video=2,
            duration_range=SHORT,
            audio_folder=f"vox2_{subset}_wav",
            seed=2,
        )
    # Vox1-E over every Vox1 speaker, as the site's list_test_all2.txt.
    utterances = collections.defaultdict(list)
    for utterance in sorted(
        _files(vox1, GROUPS["vox1-dev"] + GROUPS["vox1-test"])
    ):
        utterances[utterance.split("--")[0]].append(utterance)
    meta = root / "vox1" / "meta"
    meta.mkdir()
    write_voxceleb_trials(
        meta / "list_test_all2.txt",
        balanced_trials(utterances, n_per_class=12, seed=0),
    )
    lists = _write_lists(root / "lists", f"{vox1}/veri_test2.txt")
    return root / "vox1", root / "vox2", lists


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("voxceleb")
    vox1, vox2, lists = _write_corpus(root)
    return root, vox1, vox2, lists


def _prepare(corpus, save, **options):
    root, vox1, vox2, lists = corpus
    settings = {
        "paper_lists": lists,
        "num_workers": 1,
        "n_vox2_trials_per_class": 10,
        "progress": False,
        **options,
    }
    return prepare_voxceleb([vox1, vox2], save, **settings)


def _files(folder, speakers):
    """IDs of the wav files of the speakers under a corpus folder."""
    ids = set()
    for path in pathlib.Path(folder).glob("*/*/*/*.wav"):
        speaker, video = path.parent.parent.name, path.parent.name
        if speaker in speakers:
            ids.add(f"{speaker}--{video}--{path.stem}")
    return ids


def _check_manifests(paths):
    """Invariants of every prepared folder; returns the manifests."""
    manifests = {}
    for split in ("train", "valid", "test"):
        rows = _read(paths[split])
        assert list(rows[0]) == MANIFEST_HEADER
        assert len({row["ID"] for row in rows}) == len(rows), split
        for row in rows:
            speaker, video, number = row["ID"].split("--")
            assert (speaker, video) == (row["spk_id"], row["video"])
            wav = pathlib.Path(row["wav"])
            assert wav.is_absolute()
            assert wav.parts[-3:] == (speaker, video, f"{number}.wav")
            info = soundfile.info(wav)
            assert int(row["stop"]) == info.frames and row["start"] == "0"
            assert float(row["duration"]) == pytest.approx(
                info.frames / 16000, abs=1e-5
            )
        manifests[split] = rows
    speakers = {s: {r["spk_id"] for r in rows} for s, rows in manifests.items()}
    assert not speakers["train"] & (speakers["valid"] | speakers["test"])
    for split in ("valid", "test"):
        trials = read_trials_csv(paths[f"{split}_trials"])
        used = {t[key] for t in trials for key in ("enrol", "test")}
        assert used == {row["ID"] for row in manifests[split]}
        for trial in trials:
            same_speaker = trial["enrol"][:7] == trial["test"][:7]
            assert trial["label"] == int(same_speaker)
            same_video = (
                trial["enrol"].split("--")[1] == (trial["test"].split("--")[1])
            )
            assert trial["video_match"] == int(same_video)
    return manifests


# ----------------------------------------------------------- published lists
@needs_paper
def test_published_lists_have_the_papers_counts():
    counts = {
        name: len(common.read_csv(PAPER / f"speakers/speaker-{name}.csv"))
        for name in GROUPS
    }
    assert counts == {
        "vox1-dev": 1211,
        "vox1-test": 40,
        "vox2-dev": 5994,
        "vox2-test": 118,
    }
    speakers = {
        name: {row["ID"] for row in common.read_csv(PAPER / f"speakers/{n}")}
        for name, n in ((g, f"speaker-{g}.csv") for g in GROUPS)
    }
    for first, second in itertools.combinations(speakers, 2):
        assert not speakers[first] & speakers[second], (first, second)
    for name, chosen in GROUPS.items():
        assert set(chosen) <= speakers[name], name
    trials = read_trial_list(PAPER / "trials/trials-vox1.csv")
    assert len(trials) == 37720
    labels = collections.Counter(t["label"] for t in trials)
    assert labels == {1: 18860, 0: 18860}
    assert trials[0]["enrol"] == "id10270--x6uYqmx31kE--00001"
    used = {t[key] for t in trials for key in ("enrol", "test")}
    assert {u.split("--")[0] for u in used} == speakers["vox1-test"]


# ------------------------------------------------------------- the settings
def test_vox1_setting_on_two_roots(corpus, tmp_path):
    root, vox1, vox2, lists = corpus
    paths = _prepare(corpus, tmp_path / "prep", setting="vox1")
    manifests = _check_manifests(paths)
    train_ids = {row["ID"] for row in manifests["train"]}
    assert train_ids == _files(vox1, GROUPS["vox1-dev"])
    assert len(train_ids) == 4 * 2 * 2
    # Validation: drawn from the VoxCeleb2 test speakers (authors' layout).
    valid = read_trials_csv(paths["valid_trials"])
    assert {r["spk_id"] for r in manifests["valid"]} == set(GROUPS["vox2-test"])
    # The authors' rule: ceil(10 / 3) = 4 per speaker and per speaker pair.
    assert collections.Counter(t["label"] for t in valid) == {0: 12, 1: 12}
    # Test: the authors' Vox1-O list, every trial kept, in its order.
    test = read_trials_csv(paths["test_trials"])
    expected = read_voxceleb_trials(vox1 / "veri_test2.txt")
    assert [(t["enrol"], t["test"], t["label"]) for t in test] == [
        (t["enrol"], t["test"], t["label"]) for t in expected
    ]
    assert "test_vox1_e" not in paths  # vox1 trains on its speakers
    assert paths["problems"].read_text() == ""
    assert sorted(p.name for p in (tmp_path / "prep/scan_cache").glob("*.csv"))


def test_vox2_setting_with_vox1_e(corpus, tmp_path):
    root, vox1, vox2, lists = corpus
    paths = _prepare(corpus, tmp_path / "prep", setting="vox2")
    manifests = _check_manifests(paths)
    train_ids = {row["ID"] for row in manifests["train"]}
    assert train_ids == _files(vox2, GROUPS["vox2-dev"])
    # Validated on Vox1-O, tested on the VoxCeleb2 list.
    assert {r["spk_id"] for r in manifests["valid"]} == set(GROUPS["vox1-test"])
    assert {r["spk_id"] for r in manifests["test"]} == set(GROUPS["vox2-test"])
    # Vox1-E found in vox1/meta: an extra test set over all Vox1 speakers.
    e_trials = read_trials_csv(paths["test_vox1_e_trials"])
    listed = read_voxceleb_trials(vox1 / "meta/list_test_all2.txt")
    assert len(e_trials) == len(listed) == 24
    used = {t[key] for t in e_trials for key in ("enrol", "test")}
    assert used == {row["ID"] for row in _read(paths["test_vox1_e"])}
    assert "test_vox1_h" not in paths


def test_vox2_list_is_seeded(corpus, tmp_path):
    first = _prepare(corpus, tmp_path / "a", setting="vox2", seed=3)
    again = _prepare(corpus, tmp_path / "b", setting="vox2", seed=3)
    other = _prepare(corpus, tmp_path / "c", setting="vox2", seed=4)
    text = {
        name: paths["test_trials"].read_text()
        for name, paths in (
            ("first", first),
            ("again", again),
            ("other", other),
        )
    }
    assert text["first"] == text["again"] != text["other"]


def _vox2_with_sessions(root):
    """A VoxCeleb2 root (authors' layout) whose test speakers have six
    videos of four utterances (36 of their 276 pairs share a video)."""
    for subset, n_videos, n_utterances in (("dev", 2, 2), ("test", 6, 4)):
        write_mini_voxceleb(
            root,
            speakers=GROUPS[f"vox2-{subset}"],
            test_speakers=(),
            videos_per_speaker=n_videos,
            utterances_per_video=n_utterances,
            duration_range=SHORT,
            audio_folder=f"vox2_{subset}_wav",
            seed=5,
        )
    return root


def test_vox2_test_list_follows_the_authors_rule(corpus, tmp_path):
    """Through the real preparation (vox2 setting), on 3 test speakers of
    6 videos x 4 utterances, 100 per class: ceil(100 / 3) = 34 positives
    per speaker, in rounds over the speakers in the list's file order,
    about half within one video; each speaker pair 34 times among the
    negatives; no trial repeated; the rule in the options record. Fails
    on the old generator (``balanced_trials``): 100 + 100 sorted trials
    (33 or 34 per speaker), about 13 % of the positives within one video
    (36 / 276)."""
    root, vox1, vox2, lists = corpus
    vox2 = _vox2_with_sessions(tmp_path / "vox2")
    paths = prepare_voxceleb(
        [vox1, vox2],
        tmp_path / "prep",
        setting="vox2",
        paper_lists=lists,
        n_vox2_trials_per_class=100,
        num_workers=1,
        progress=False,
    )
    _check_manifests(paths)
    trials = read_trials_csv(paths["test_trials"])
    listed = common.read_csv(lists / "speakers/speaker-vox2-test.csv")
    order = [row["ID"] for row in listed]
    positives = [t for t in trials if t["label"] == 1]
    assert [t["label"] for t in trials] == [1] * 102 + [0] * 102
    assert [t["enrol"].split("--")[0] for t in positives] == order * 34
    share = sum(t["video_match"] for t in positives) / len(positives)
    assert 0.35 < share < 0.65, share
    pairs = collections.Counter(
        frozenset(t[key].split("--")[0] for key in ("enrol", "test"))
        for t in trials
        if t["label"] == 0
    )
    assert len(pairs) == 3 and set(pairs.values()) == {34}
    keys = {frozenset((t["enrol"], t["test"])) for t in trials}
    assert len(keys) == len(trials)
    record = json.loads(
        common.options_path(tmp_path / "prep", "voxceleb").read_text()
    )
    assert record["vox2_trials_rule"] == "authors"


def test_vox2_balanced_rule_stays_reachable_and_redoes(corpus, tmp_path):
    """``vox2_trials_rule="balanced"`` gives the previous list (exactly
    ``n_vox2_trials_per_class`` of each, sorted); switching the rule redoes
    the trial lists (it is recorded in the options) but reuses the scan
    caches; an unknown rule is refused by name. Fails on the old code,
    which has no ``vox2_trials_rule``."""
    save = tmp_path / "prep"
    paths = _prepare(corpus, save, setting="vox2", vox2_trials_rule="balanced")
    trials = read_trials_csv(paths["test_trials"])
    assert collections.Counter(t["label"] for t in trials) == {0: 10, 1: 10}
    pairs = [(t["enrol"], t["test"]) for t in trials]
    assert pairs == sorted(pairs)
    before = _stamps(save)
    _prepare(corpus, save, setting="vox2")
    after = _stamps(save)
    assert after[paths["test_trials"]] != before[paths["test_trials"]]
    caches = [p for p in before if p.parent.name == "scan_cache"]
    assert caches and all(after[p] == before[p] for p in caches)
    trials = read_trials_csv(paths["test_trials"])
    assert collections.Counter(t["label"] for t in trials) == {0: 12, 1: 12}
    record = json.loads(common.options_path(save, "voxceleb").read_text())
    assert record["vox2_trials_rule"] == "authors"
    with pytest.raises(ValueError, match="vox2_trials_rule 'uniform'"):
        _prepare(corpus, save, vox2_trials_rule="uniform")


def test_official_text_list_and_authors_layout_root(corpus, tmp_path):
    root, vox1, vox2, lists = corpus
    veri = tmp_path / "veri_test2.txt"
    kept = (vox1 / "veri_test2.txt").read_text().splitlines()[:6]
    veri.write_text("\n".join(kept) + "\n")
    paths = _prepare(
        corpus, tmp_path / "prep", setting="vox1", vox1_o_trials=veri
    )
    test = read_trials_csv(paths["test_trials"])
    assert [f"{t['label']} {t['enrol']}" for t in test] == [
        f"{line.split()[0]} {line.split()[1][:-4].replace('/', '--')}"
        for line in kept
    ]
    record = json.loads(
        common.options_path(tmp_path / "prep", "voxceleb").read_text()
    )
    assert record["vox1_o_trials"] == str(veri)


def test_trials_using_training_speakers_are_refused(corpus, tmp_path):
    root, vox1, vox2, lists = corpus
    with pytest.raises(ValueError, match="training speaker"):
        _prepare(
            corpus,
            tmp_path / "prep",
            setting="vox1",
            vox1_o_trials=vox1 / "meta/list_test_all2.txt",
        )


def test_missing_trial_audio_raises_or_is_dropped(corpus, tmp_path):
    root, vox1, vox2, lists = corpus
    veri = tmp_path / "veri.txt"
    text = (vox1 / "veri_test2.txt").read_text()
    enrol = text.split()[1]
    veri.write_text(text + f"1 {enrol} id10276/NoSuchVideo/00009.wav\n")
    with pytest.raises(ValueError, match=r"veri.txt: 1 trial\(s\) name"):
        _prepare(corpus, tmp_path / "a", vox1_o_trials=veri)
    assert not common.options_path(tmp_path / "a", "voxceleb").exists()
    paths = _prepare(
        corpus, tmp_path / "b", vox1_o_trials=veri, allow_missing_trials=True
    )
    assert "id10276--NoSuchVideo--00009" in paths["problems"].read_text()
    assert len(read_trials_csv(paths["test_trials"])) == len(text.splitlines())


def test_bad_arguments_name_the_problem(corpus, tmp_path):
    root, vox1, vox2, lists = corpus
    with pytest.raises(ValueError, match="setting 'vox3'"):
        _prepare(corpus, tmp_path / "p", setting="vox3")
    with pytest.raises(ValueError, match="split_source 'generate'"):
        _prepare(corpus, tmp_path / "p", split_source="generate")
    with pytest.raises(ValueError, match="nowhere' is not a folder"):
        parse_data_folders(f"{vox1},{tmp_path / 'nowhere'}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no VoxCeleb speaker folder"):
        find_speaker_folders([empty])
    only_vox1 = {"paper_lists": lists, "progress": False, "num_workers": 1}
    with pytest.raises(ValueError, match="VoxCeleb2 test set"):
        prepare_voxceleb(vox1, tmp_path / "p", **only_vox1)


def test_duplicate_speakers_are_reported(corpus):
    root, vox1, vox2, lists = corpus
    problems = common.ProblemReport()
    folders = find_speaker_folders([vox1, vox1 / "wav"], problems)
    assert folders["id10001"] == str(vox1 / "wav" / "id10001")
    assert len(problems) == 7 and "also in" in problems.lines()[0]


# ----------------------------------------------------- skip, redo, resume
def test_skip_when_done_and_redo_when_options_change(corpus, tmp_path):
    save = tmp_path / "prep"
    paths = _prepare(corpus, save, setting="vox1")
    before = _stamps(save)
    assert _prepare(corpus, save, setting="vox1") == paths
    assert _stamps(save) == before
    _prepare(corpus, save, setting="vox1", seed=99)
    after = _stamps(save)
    assert after[paths["valid_trials"]] != before[paths["valid_trials"]]
    # The scan caches were reused, not rewritten.
    caches = [p for p in before if p.parent.name == "scan_cache"]
    assert caches and all(after[p] == before[p] for p in caches)
    record = common.options_path(save, "voxceleb").read_text()
    assert '"seed": 99' in record


def test_killed_scan_resumes_where_it_stopped(tmp_path, monkeypatch):
    corpus = write_mini_voxceleb(
        tmp_path / "vox",
        n_speakers=4,
        videos_per_speaker=2,
        utterances_per_video=3,
        duration_range=SHORT,
        test_speakers=(),
    )
    folders = find_speaker_folders([corpus])
    cache = tmp_path / "cache"
    real_reader = scan.read_wav_header
    calls = {"n": 0}

    def killed_at_the_ninth_file(path):
        calls["n"] += 1
        if calls["n"] == 9:  # inside the second speaker's folder
            raise KeyboardInterrupt
        return real_reader(path)

    monkeypatch.setattr(scan, "read_wav_header", killed_at_the_ninth_file)
    with pytest.raises(KeyboardInterrupt):
        scan.scan_speakers(folders, cache, num_workers=1, progress=False)
    monkeypatch.undo()
    assert sorted(p.name for p in cache.iterdir()) == [
        "id10001.csv",
        "id10001.json",
    ]
    summary = scan.scan_speakers(folders, cache, num_workers=1, progress=False)
    assert summary.n_reused == 1 and summary.n_files == 4 * 6
    # A speaker whose folder changed is scanned again.
    video = next((pathlib.Path(corpus) / "wav/id10003").iterdir())
    soundfile.write(video / "00009.wav", np.zeros(320), 16000)
    summary = scan.scan_speakers(folders, cache, num_workers=2, progress=False)
    assert summary.n_reused == 3 and summary.n_files == 4 * 6 + 1
    lines = list(scan.iter_cache_lines(cache, ["id10003"]))
    assert any(scan.line_id(line).endswith("--00009") for line in lines)


def test_parallel_scan_equals_serial_scan(corpus, tmp_path):
    root, vox1, vox2, lists = corpus
    folders = find_speaker_folders([vox1, vox2])
    scan.scan_speakers(folders, tmp_path / "a", num_workers=1, progress=False)
    scan.scan_speakers(folders, tmp_path / "b", num_workers=2, progress=False)
    for speaker in folders:
        a, b = (
            (tmp_path / name / f"{speaker}.csv").read_text() for name in "ab"
        )
        assert a == b and a.count("\n") == 1 + 4


def test_problem_files_are_reported_and_skipped(tmp_path):
    corpus = pathlib.Path(
        write_mini_voxceleb(
            tmp_path / "vox",
            n_speakers=2,
            videos_per_speaker=1,
            utterances_per_video=2,
            duration_range=SHORT,
            test_speakers=(),
        )
    )
    video = next((corpus / "wav/id10001").iterdir())
    good = video / "00001.wav"
    truncated = video / "00005.wav"
    truncated.write_bytes(good.read_bytes()[:-100])
    (video / "00006.wav").write_bytes(b"not a wav file at all")
    soundfile.write(video / "00007.wav", np.zeros(800), 8000)
    soundfile.write(corpus / "wav/id10001/00008.wav", np.zeros(80), 16000)
    summary = scan.scan_speakers(
        {"id10001": corpus / "wav/id10001"}, tmp_path / "c", progress=False
    )
    assert summary.n_files == 2
    report = "\n".join(summary.problems)
    assert f"{truncated}: truncated" in report
    assert f"{video / '00006.wav'}: unreadable audio" in report
    assert "sample rate 8000, expected 16000" in report
    assert "00008.wav: not in a video folder" in report


# ---------------------------------------------------------- header reader
@pytest.mark.parametrize(
    "kind",
    ["PCM_16", "PCM_24", "FLOAT", "WAVEX", "LIST", "RF64", "ULAW"],
)
def test_wav_header_agrees_with_soundfile(tmp_path, kind):
    path = tmp_path / "a.wav"
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (1001, 2))
    if kind == "LIST":  # a metadata chunk of odd size before the data
        with soundfile.SoundFile(path, "w", 16000, 2, "PCM_16") as out:
            out.title = "odd" * 11
            out.write(audio)
    elif kind in ("WAVEX", "RF64"):
        soundfile.write(path, audio, 16000, format=kind)
    else:
        soundfile.write(path, audio, 16000, subtype=kind)
    info = soundfile.info(path)
    assert scan.read_wav_header(path) == (info.frames, 16000, 2)


def test_wav_header_of_a_streamed_file(tmp_path):
    path = tmp_path / "a.wav"
    soundfile.write(path, np.zeros(500), 16000, "PCM_16")
    data = bytearray(path.read_bytes())
    position = data.index(b"data")
    data[position + 4 : position + 8] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    assert scan.read_wav_header(path).frames == 500


# ------------------------------------------------------ bounded memory
def _tree(root, n_videos, per_video):
    blob = _wav_blob()
    for video in range(n_videos):
        folder = root / "id10001" / f"video{video:04d}"
        folder.mkdir(parents=True)
        for number in range(per_video):
            (folder / f"{number:05d}.wav").write_bytes(blob)
    return root / "id10001"


def _wav_blob():
    import io

    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(16, dtype="int16"), 16000, format="WAV")
    return buffer.getvalue()


def _peak_bytes(function):
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_scan_and_manifest_stream_rows(tmp_path):
    """Peak memory does not grow with the number of files: rows are
    written as they are read, never gathered in a list."""
    small = _tree(tmp_path / "small", 4, 50)
    large = _tree(tmp_path / "large", 40, 50)
    peaks = {}
    for name, folder in (("small", small), ("large", large)):
        cache = tmp_path / f"cache_{name}"
        peaks[name] = _peak_bytes(
            lambda f=folder, c=cache: scan.scan_speaker(f, "id10001", c)
        )
        manifest = tmp_path / f"{name}.csv"
        peaks[name + "_manifest"] = _peak_bytes(
            lambda m=manifest, c=cache: scan.write_manifest_from_cache(
                m, c, ["id10001"]
            )
        )
    assert len(_read(tmp_path / "large.csv")) == 2000
    # 1,800 more files: a kept row each would cost more than 300 kB.
    assert peaks["large"] < peaks["small"] + 100_000, peaks
    assert peaks["large_manifest"] < peaks["small_manifest"] + 50_000, peaks


# ----------------------------------------------------------- m4a -> wav
FAKE_FFMPEG = """#!{python}
import os, sys, wave
args = sys.argv[1:]
source, target = args[args.index("-i") + 1], args[-1]
with open(os.environ["FAKE_FFMPEG_LOG"], "a") as log:
    log.write(source + "\\n")
if "bad" in os.path.basename(source):
    sys.stderr.write("Invalid data found when processing input\\n")
    sys.exit(1)
rate = int(args[args.index("-ar") + 1])
with open(source, "rb") as audio:
    frames = 100 * len(audio.read())
with wave.open(target, "wb") as out:
    out.setnchannels(1)
    out.setsampwidth(2)
    out.setframerate(rate)
    out.writeframes(b"\\x01\\x00" * frames)
"""


@pytest.fixture
def fake_ffmpeg(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "ffmpeg"
    script.write_text(FAKE_FFMPEG.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "ffmpeg.log"
    log.touch()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_FFMPEG_LOG", str(log))
    return log


def _m4a_tree(root):
    files = {}
    for speaker, video, number in itertools.product(
        ("id00012", "id00015"), ("21Uxsk56VDQ", "zjT8XxWzUf8"), (1, 2)
    ):
        path = root / "dev/aac" / speaker / video / f"{number:05d}.m4a"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"m" * (10 + number))
        files[path] = 100 * (10 + number)
    return files


def test_convert_m4a_converts_resumes_and_reports(fake_ffmpeg, tmp_path):
    files = _m4a_tree(tmp_path / "vox2")
    bad = tmp_path / "vox2/dev/aac/id00012/21Uxsk56VDQ/bad.m4a"
    bad.write_bytes(b"broken")
    out = tmp_path / "vox2_wav"
    counts = convert_m4a(tmp_path / "vox2", out, num_workers=2, progress=False)
    assert (counts["converted"], counts["skipped"], counts["failed"]) == (
        8,
        0,
        1,
    )
    failures = counts["failures_file"].read_text()
    assert str(bad) in failures and "Invalid data" in failures
    for source, frames in files.items():
        target = (
            out / "wav" / pathlib.Path(*source.parts[-3:]).with_suffix(".wav")
        )
        info = soundfile.info(target)
        assert (info.frames, info.samplerate, info.channels) == (
            frames,
            16000,
            1,
        )
    assert not [p for p in out.rglob(".*") if p.is_file()]
    # A re-run skips complete outputs and redoes a truncated one.
    victim = out / "wav/id00015/zjT8XxWzUf8/00002.wav"
    victim.write_bytes(victim.read_bytes()[:-50])
    n_calls = len(fake_ffmpeg.read_text().splitlines())
    counts = convert_m4a(tmp_path / "vox2", out, num_workers=1, progress=False)
    assert (counts["converted"], counts["skipped"], counts["failed"]) == (
        1,
        7,
        1,
    )
    calls = fake_ffmpeg.read_text().splitlines()[n_calls:]
    assert sorted(calls) == sorted([str(bad), str(_source_of(files, victim))])
    assert soundfile.info(victim).frames == 1200
    # The converted tree is ready for the preparation.
    folders = find_speaker_folders([out])
    assert sorted(folders) == ["id00012", "id00015"]


def _source_of(files, target):
    """The m4a source of a converted wav."""
    for source in files:
        if source.parts[-3:-1] == target.parts[-3:-1] and (
            source.stem == target.stem
        ):
            return source
    raise KeyError(target)


def test_convert_m4a_without_ffmpeg_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="ffmpeg not found.*apt-get"):
        convert_m4a(tmp_path, tmp_path / "out", progress=False)


def test_convert_m4a_command_line(fake_ffmpeg, tmp_path, capsys):
    _m4a_tree(tmp_path / "vox2")
    status = voxceleb_main(
        [
            "convert-m4a",
            str(tmp_path / "vox2"),
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    assert status == 0
    assert "8 converted, 0 already done, 0 failed" in capsys.readouterr().out
    (tmp_path / "vox2/dev/aac/id00012/21Uxsk56VDQ/bad.m4a").write_bytes(b"x")
    status = voxceleb_main(
        [
            "convert-m4a",
            str(tmp_path / "vox2"),
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    assert status == 1 and "1 failed" in capsys.readouterr().out


def test_prepare_command_line(corpus, tmp_path, capsys):
    root, vox1, vox2, lists = corpus
    status = voxceleb_main(
        [
            "prepare",
            f"--data_folders={vox1},{vox2}",
            f"--save_folder={tmp_path / 'prep'}",
            "--setting=vox2",
            f"--paper_lists={lists}",
            "--workers=1",
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert f"train: {tmp_path / 'prep' / 'train.csv'}" in printed
    assert len(_read(tmp_path / "prep/train.csv")) == 3 * 4


# --------------------------------------------------------- mini corpus
def test_mini_voxceleb_layout_and_sessions(tmp_path):
    corpus = write_mini_voxceleb(
        tmp_path / "a",
        n_speakers=4,
        videos_per_speaker=3,
        utterances_per_video=3,
        duration_range=(1.0, 1.5),
        seed=2,
    )
    root = pathlib.Path(corpus)
    speakers = sorted(p.name for p in (root / "wav").iterdir())
    assert speakers == ["id10001", "id10002", "id10003", "id10004"]
    files = sorted(root.glob("wav/*/*/*.wav"))
    assert len(files) == 4 * 3 * 3
    videos = {p.parent.name for p in files}
    assert len(videos) == 12 and all(len(v) == 11 for v in videos)
    # Trials over the last quarter of the speakers (at least two).
    trials = read_voxceleb_trials(root / "veri_test2.txt")
    used = {t[key] for t in trials for key in ("enrol", "test")}
    assert {u[:7] for u in used} == {"id10003", "id10004"}
    for utterance in used:
        assert (root / "wav" / (utterance.replace("--", "/") + ".wav")).exists()
    # Each video has its own channel: utterances of one video are closer
    # in long-term spectrum than utterances of two videos of the speaker.
    for speaker in speakers:
        spectra = {}
        for path in root.glob(f"wav/{speaker}/*/*.wav"):
            audio, rate = soundfile.read(path)
            assert rate == 16000 and audio.ndim == 1
            spectra[path] = np.log(signal.welch(audio, rate, nperseg=512)[1])
        within, across = [], []
        for first, second in itertools.combinations(spectra, 2):
            distance = np.mean((spectra[first] - spectra[second]) ** 2)
            same = first.parent == second.parent
            (within if same else across).append(distance)
        assert np.mean(within) < np.mean(across), speaker
    # Deterministic.
    again = write_mini_voxceleb(
        tmp_path / "b",
        n_speakers=4,
        videos_per_speaker=3,
        utterances_per_video=3,
        duration_range=(1.0, 1.5),
        seed=2,
    )
    first, second = files[5], pathlib.Path(again) / files[5].relative_to(root)
    assert first.read_bytes() == second.read_bytes()


def test_mini_voxceleb_command_line(tmp_path, capsys):
    corpus = mini_corpus_main(
        [
            "voxceleb",
            "--out",
            str(tmp_path / "mini"),
            "--speakers",
            "3",
            "--videos",
            "1",
            "--utterances",
            "2",
            "--audio_folder",
            "vox2_test_wav",
        ]
    )
    assert "wrote 6 wav files of 3 speakers" in capsys.readouterr().out
    assert len(list(pathlib.Path(corpus).glob("vox2_test_wav/*/*/*.wav"))) == 6
    with pytest.raises(ValueError, match="not among the speakers"):
        write_mini_voxceleb(tmp_path / "x", n_speakers=2, test_speakers=["id1"])
