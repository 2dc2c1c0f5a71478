"""Tests of data_prep.trials against the published lists, of the
balanced trial generator and of the authors' VoxCeleb2 sampler."""

import collections
import csv
import itertools
import pathlib
import re

import numpy as np
import pytest

from data_prep import trials as tr

PAPER = (
    pathlib.Path(__file__).resolve().parents[2]
    / "shared/data/paper_splits/VCTK-Corpus/preprocess"
)
needs_paper = pytest.mark.skipif(
    not PAPER.is_dir(), reason="published lists not found at ../shared"
)


def _raw_rows(path):
    with open(path, newline="") as source:
        return list(csv.DictReader(source))


def _speaker(utterance):
    return utterance.split("_")[0]


def _paper_meta(split):
    rows = tr.read_paper_speakers(PAPER / "speakers" / f"speaker-{split}.csv")
    return {
        speaker: {
            "gender": row["GENDER"],
            "age": row["AGE"],
            "accent": row["ACCENTS"],
            "region": row["REGION"],
        }
        for speaker, row in rows.items()
    }


# ------------------------------------------------------- the published lists
@needs_paper
def test_paper_speaker_lists():
    splits = {
        name: set(
            tr.read_paper_speakers(PAPER / "speakers" / f"speaker-{name}.csv")
        )
        for name in ("train", "valid", "test")
    }
    assert [len(splits[n]) for n in ("train", "valid", "test")] == [72, 18, 18]
    everyone = set.union(*splits.values())
    assert len(everyone) == 108  # disjoint
    # p315 is in no list; p280, which the paper says it removed, is in the
    # published train list (but in no valid/test list or trial).
    assert "p315" not in everyone
    assert not {"p280", "p315"} & (splits["valid"] | splits["test"])
    assert all(re.fullmatch(r"p\d{3}", s) for s in everyone)


@needs_paper
@pytest.mark.parametrize("split, count", [("valid", 16040), ("test", 16072)])
def test_paper_trials(split, count):
    path = PAPER / "trials" / f"trials-{split}.csv"
    raw = _raw_rows(path)
    trials = tr.read_paper_trials(path)
    assert len(trials) == len(raw) == count
    # Labels, IDs and match flags are those of the file, row by row.
    for trial, row in zip(trials, raw, strict=True):
        assert trial["label"] == int(row["LABEL"])
        assert trial["enrol_path"] == row["SAMPLE1"]
        speaker, name = row["SAMPLE1"].split("/")
        assert (
            trial["enrol"] == name[:-4] and _speaker(trial["enrol"]) == speaker
        )
        assert trial["test"] == row["SAMPLE2"].split("/")[1][:-4]
        assert trial["gender_match"] == int(row["GENDER_MATCH"])
    labels = collections.Counter(t["label"] for t in trials)
    assert abs(labels[1] - labels[0]) / count < 0.005  # balanced
    numbers = [
        int(t[key].split("_")[1]) for t in trials for key in ("enrol", "test")
    ]
    assert min(numbers) >= 25
    speakers = set(_paper_meta(split))
    used = {_speaker(t[key]) for t in trials for key in ("enrol", "test")}
    assert used == speakers
    # Positives pair one speaker, negatives two; no self-pair.
    for trial in trials:
        same = _speaker(trial["enrol"]) == _speaker(trial["test"])
        assert same == (trial["label"] == 1)
        assert trial["enrol"] != trial["test"]


@needs_paper
@pytest.mark.parametrize("split", ["valid", "test"])
def test_generator_reproduces_published_match_rates(split):
    """Our generator on the paper's speakers gives negatives with the
    published rates of gender, accent, age-band and region matches."""
    published = tr.read_paper_trials(PAPER / "trials" / f"trials-{split}.csv")
    meta = _paper_meta(split)
    utterances = collections.defaultdict(set)
    for trial in published:
        for key in ("enrol", "test"):
            utterances[_speaker(trial[key])].add(trial[key])
    generated = tr.balanced_trials(utterances, meta, n_per_class=8000, seed=3)

    def rates(trials):
        negatives = [t for t in trials if t["label"] == 0]
        return {
            column: sum(t[column] for t in negatives) / len(negatives)
            for column in ("gender_match", "accent_match", "hard_age_match")
        }

    ours, theirs = rates(generated), rates(published)
    for column in ours:
        assert abs(ours[column] - theirs[column]) < 0.02, column
    # Region: ours treats an empty region as unknown (no match), as theirs.
    negatives = [t for t in generated if t["label"] == 0]
    region = sum(t["region_match"] for t in negatives) / len(negatives)
    theirs_region = sum(
        t["region_match"] for t in published if t["label"] == 0
    ) / sum(1 for t in published if t["label"] == 0)
    assert abs(region - theirs_region) < 0.02


@needs_paper
def test_voxceleb_paths_of_the_paper_list():
    path = PAPER.parents[1] / "VoxCeleb/preprocess/trials/trials-vox1.csv"
    if not path.is_file():
        pytest.skip("VoxCeleb list absent")
    trial = tr.read_paper_trials(path, tr.voxceleb_path_to_id)[0]
    assert re.fullmatch(r"id\d{5}--[\w-]{11}--\d{5}", trial["enrol"])
    assert tr.voxceleb_id_to_path(trial["enrol"]) in trial["enrol_path"]


# ------------------------------------------------------------------ file I/O
def _some_trials():
    utterances = {s: [f"{s}_{n:03d}" for n in range(25, 31)] for s in "abcd"}
    meta = {
        s: {"gender": g, "age": a, "accent": "x", "region": ""}
        for s, g, a in zip("abcd", "FFMM", (20, 22, 30, 40), strict=True)
    }
    return tr.balanced_trials(utterances, meta, n_per_class=10, seed=0)


def test_trials_csv_round_trip(tmp_path):
    trials = _some_trials()
    path = tr.write_trials_csv(tmp_path / "trials.csv", trials)
    header = path.read_text().splitlines()[0].split(",")
    assert header[:3] == ["enrol", "test", "label"]
    assert "gender_match" in header and "soft_age_match" in header
    assert tr.read_trials_csv(path) == trials


def test_voxceleb_text_round_trip(tmp_path):
    trials = [
        {
            "enrol": "id10270--x6uYqmx31kE--00001",
            "test": "id10270--8jEAjG6SegY--00008",
            "label": 1,
        },
        {
            "enrol": "id10270--x6uYqmx31kE--00001",
            "test": "id10300--ize_eiCFEg0--00003",
            "label": 0,
        },
    ]
    path = tr.write_voxceleb_trials(tmp_path / "veri.txt", trials)
    assert path.read_text().splitlines()[0] == (
        "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav"
    )
    assert tr.read_voxceleb_trials(path) == trials
    # Our generated trials, with VCTK-style paths, come back as well.
    ours = [
        {k: t[k] for k in ("enrol", "test", "label")} for t in _some_trials()
    ]
    path = tr.write_voxceleb_trials(
        tmp_path / "vctk.txt", ours, lambda u: f"{_speaker(u)}/{u}.wav"
    )
    assert tr.read_voxceleb_trials(path, tr.basename_id) == ours


@pytest.mark.parametrize(
    "text, message",
    [
        ("1 a.wav b.wav\n2 a.wav c.wav\n", r"veri.txt:2: label '2'"),
        ("1 a.wav b.wav\n\n1 a.wav\n", r"veri.txt:3: expected"),
    ],
)
def test_voxceleb_text_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "veri.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        tr.read_voxceleb_trials(path)


def test_paper_trials_errors(tmp_path):
    path = tmp_path / "trials-x.csv"
    path.write_text("LABEL,SAMPLE1\n1,p1/p1_025.wav\n")
    with pytest.raises(ValueError, match="trials-x.csv: header"):
        tr.read_paper_trials(path)
    path.write_text("LABEL,SAMPLE1,SAMPLE2\n1,a/a_1.wav,a/a_2.wav\nx,a,b\n")
    with pytest.raises(ValueError, match="trials-x.csv:3: label 'x'"):
        tr.read_paper_trials(path)


# ----------------------------------------------------------------- generator
def _corpus(n_speakers=8, n_utterances=10):
    genders = "FM"
    accents = ("English", "Scottish", "American")
    utterances = {
        f"p{300 + i}": [
            f"p{300 + i}_{n:03d}" for n in range(25, 25 + n_utterances)
        ]
        for i in range(n_speakers)
    }
    meta = {
        speaker: {
            "gender": genders[i % 2],
            "age": 18 + 2 * i,
            "accent": accents[i % 3],
            "region": ("Fife", "Ohio")[i % 2],
        }
        for i, speaker in enumerate(utterances)
    }
    return utterances, meta


def test_generator_is_balanced_and_well_formed():
    utterances, meta = _corpus()
    trials = tr.balanced_trials(utterances, meta, n_per_class=200, seed=1)
    labels = collections.Counter(t["label"] for t in trials)
    assert labels[0] == labels[1] == 200
    pairs = [frozenset((t["enrol"], t["test"])) for t in trials]
    assert len(set(pairs)) == len(pairs)  # no repeated trial
    for trial in trials:
        assert trial["enrol"] != trial["test"]
        same = _speaker(trial["enrol"]) == _speaker(trial["test"])
        assert same == (trial["label"] == 1)
        first, second = (
            meta[_speaker(trial["enrol"])],
            meta[_speaker(trial["test"])],
        )
        assert trial["gender_match"] == int(first["gender"] == second["gender"])
        assert trial["accent_match"] == int(first["accent"] == second["accent"])
    # Positives are spread evenly over the speakers: 200 / 8 = 25 each.
    positives = collections.Counter(
        _speaker(t["enrol"]) for t in trials if t["label"] == 1
    )
    assert set(positives.values()) == {25}


def test_generator_negatives_fill_each_match_cell_equally():
    utterances, meta = _corpus()
    trials = tr.balanced_trials(utterances, meta, n_per_class=201, seed=2)
    cells = collections.Counter(
        (t["gender_match"], t["accent_match"])
        for t in trials
        if t["label"] == 0
    )
    assert sorted(cells) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert max(cells.values()) - min(cells.values()) <= 1
    assert sum(cells.values()) == 201


def test_generator_spreads_a_cell_over_its_speaker_pairs():
    utterances, meta = _corpus()
    trials = tr.balanced_trials(utterances, meta, n_per_class=400, seed=2)
    by_cell = collections.defaultdict(collections.Counter)
    for t in trials:
        if t["label"] == 0:
            pair = frozenset((_speaker(t["enrol"]), _speaker(t["test"])))
            by_cell[(t["gender_match"], t["accent_match"])][pair] += 1
    for counts in by_cell.values():
        assert max(counts.values()) - min(counts.values()) <= 1


def test_generator_is_seeded_and_ignores_input_order():
    utterances, meta = _corpus()
    first = tr.balanced_trials(utterances, meta, n_per_class=50, seed=7)
    shuffled = {s: list(reversed(u)) for s, u in reversed(utterances.items())}
    assert tr.balanced_trials(shuffled, meta, n_per_class=50, seed=7) == first
    assert tr.balanced_trials(utterances, meta, n_per_class=50, seed=8) != first


def test_generator_shrinks_to_what_the_corpus_can_give():
    utterances, meta = _corpus(n_speakers=3, n_utterances=3)
    trials = tr.balanced_trials(utterances, meta, n_per_class=1000, seed=0)
    labels = collections.Counter(t["label"] for t in trials)
    # Three speakers with three utterances have 3 x 3 positive pairs.
    assert labels[1] == labels[0] == 9


def test_generator_can_stratify_by_region():
    utterances, meta = _corpus()
    trials = tr.balanced_trials(
        utterances, meta, n_per_class=100, seed=0, stratify_by=("region",)
    )
    regions = collections.Counter(
        t["region_match"] for t in trials if t["label"] == 0
    )
    assert regions[0] == regions[1] == 50


def test_generator_refuses_impossible_requests():
    with pytest.raises(ValueError, match="two speakers"):
        tr.balanced_trials({"a": ["a_1", "a_2"]}, n_per_class=5)
    with pytest.raises(ValueError, match="unknown stratify_by"):
        tr.balanced_trials({"a": ["a_1"]}, stratify_by=("height",))


def test_age_bands_and_unknown_meta():
    bands = tr.age_bands({"a": 18, "b": "24", "c": 30, "d": "n/a"})
    assert bands == {"a": 0, "b": 1, "c": 2}
    flags = tr.meta_matches(
        {"gender": "F", "region": ""}, {"gender": "F", "region": ""}, 0, 0
    )
    assert flags == {"gender_match": 1, "soft_age_match": 1, "region_match": 0}


def test_read_trials_tells_the_three_forms_apart(tmp_path):
    trials = _some_trials()
    ours = tr.write_trials_csv(tmp_path / "ours.csv", trials)
    vox = tr.write_voxceleb_trials(
        tmp_path / "vox.txt", trials, lambda u: f"{_speaker(u)}/{u}.wav"
    )
    paper = tmp_path / "paper.csv"
    paper.write_text(
        "LABEL,SAMPLE1,SAMPLE2,GENDER_MATCH\n"
        + "".join(
            f"{t['label']},{_speaker(t['enrol'])}/{t['enrol']}.wav,"
            f"{_speaker(t['test'])}/{t['test']}.wav,{t['gender_match']}\n"
            for t in trials
        )
    )
    expected = {key: [t[key] for t in trials] for key in ("enrol", "label")}
    for path in (ours, paper):
        columns = tr.read_trials(path)
        assert columns["gender_match"] == [t["gender_match"] for t in trials]
        assert {k: columns[k] for k in expected} == expected
    columns = tr.read_trials(vox)
    assert columns["label"] == expected["label"]
    assert columns["enrol"] == [
        f"{_speaker(u)}--{u}" for u in expected["enrol"]
    ]
    (tmp_path / "other.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match="other.csv: header 'a,b,c'"):
        tr.read_trials(tmp_path / "other.csv")
    (tmp_path / "empty.txt").write_text("")
    assert tr.read_trials(tmp_path / "empty.txt") == {
        "enrol": [],
        "test": [],
        "label": [],
    }


# ------------------------------------------------ the authors' Vox2 sampler
# Utterances of a speaker's eight videos (rotated, plus 0-2, per speaker):
# a one-utterance video among them; 203+ same-video pairs per speaker.
VIDEO_SIZES = (1, 3, 6, 10, 15, 4, 8, 2)


def _vox2_structure(n_speakers=118):
    """``{speaker: {video: [IDs]}}`` of a synthetic VoxCeleb2 test set."""
    structure = {}
    for k in range(n_speakers):
        speaker = f"id{k:05d}"
        structure[speaker] = {}
        for j in range(8):
            video = f"vid{k:03d}x{j}"
            size = VIDEO_SIZES[(j + k) % 8] + k % 3
            structure[speaker][video] = [
                f"{speaker}--{video}--{n:05d}" for n in range(1, size + 1)
            ]
    return structure


def _sessions(n_videos, n_utterances, speakers):
    """``n_videos`` videos of ``n_utterances`` for each speaker."""
    return {
        s: {
            f"{s}v{j}": [f"{s}--{s}v{j}--{n:05d}" for n in range(n_utterances)]
            for j in range(n_videos)
        }
        for s in speakers
    }


def _spk(utterance):
    return utterance.split("--")[0]


def _video(utterance):
    return utterance.split("--")[1]


@pytest.fixture(scope="module")
def vox2_list():
    return tr.voxceleb2_authors_trials(_vox2_structure(), seed=0)


def test_authors_vox2_counts_and_pair_multiplicity(vox2_list):
    """118 speakers, the defaults: 272 positives per speaker (32,096), each
    of the 6,903 unordered speaker pairs exactly 5 times among the
    negatives (34,515), 66,611 trials; labels and video_match right, no
    trial repeated in either order. Fails on the old generator
    (``balanced_trials``, 32,000 per class): 64,000 trials, 271 or 272
    positives per speaker, 4 or 5 negatives per pair."""
    trials = vox2_list
    assert len(trials) == 66611
    positives = collections.Counter(
        _spk(t["enrol"]) for t in trials if t["label"] == 1
    )
    assert len(positives) == 118 and set(positives.values()) == {272}
    pairs = collections.Counter(
        frozenset((_spk(t["enrol"]), _spk(t["test"])))
        for t in trials
        if t["label"] == 0
    )
    assert len(pairs) == 118 * 117 // 2 == 6903
    assert set(pairs.values()) == {5} and all(len(p) == 2 for p in pairs)
    for trial in trials:
        assert sorted(trial) == ["enrol", "label", "test", "video_match"]
        assert trial["enrol"] != trial["test"]
        assert trial["label"] == int(
            _spk(trial["enrol"]) == _spk(trial["test"])
        )
        same_video = _video(trial["enrol"]) == _video(trial["test"])
        assert trial["video_match"] == int(same_video)
    keys = {frozenset((t["enrol"], t["test"])) for t in trials}
    assert len(keys) == len(trials)
    tr.check_trial_pairs(trials, "vox2")


def test_authors_vox2_within_video_share_is_a_fair_coin(vox2_list):
    """Half of the positives are within one video, by the authors' rule: a
    fair coin per trial (``int(.5 <= random.random())``), so 1/2 overall
    and, per speaker, a binomial(272, 1/2) count around 136 (not a quota of
    exactly 136: their script has none). Fails on the old generator
    (positive pairs uniform over a speaker's utterances: about 17 % within
    one video here), and on a per-speaker quota (no spread)."""
    positives = [t for t in vox2_list if t["label"] == 1]
    share = sum(t["video_match"] for t in positives) / len(positives)
    assert share == pytest.approx(0.5, abs=0.01)
    within = collections.Counter(
        _spk(t["enrol"]) for t in positives if t["video_match"]
    )
    counts = np.array([within[s] for s in _vox2_structure()])
    assert counts.min() > 136 - 40 and counts.max() < 136 + 40
    assert counts.std() > 4  # binomial: sqrt(272 / 4) = 8.2


def test_authors_vox2_negatives_draw_a_video_then_an_utterance():
    """A negative draws a video of each speaker uniformly, then one of its
    utterances: a speaker with one video of 40 utterances and four of one
    has the large video in about 1/5 of its negatives. Fails on the old
    generator (utterances drawn uniformly: 40/44 from the large video)."""
    structure = _sessions(3, 10, [f"id{k:05d}" for k in range(1, 21)])
    structure["id00000"] = {
        "large": [f"id00000--large--{n:05d}" for n in range(40)],
        **{f"one{j}": [f"id00000--one{j}--00001"] for j in range(4)},
    }
    trials = tr.voxceleb2_authors_trials(
        structure, n_positive=1, negatives_per_pair=10, seed=3
    )
    videos = [
        _video(u)
        for t in trials
        if t["label"] == 0
        for u in (t["enrol"], t["test"])
        if _spk(u) == "id00000"
    ]
    assert len(videos) == 20 * 10
    assert 0.1 < videos.count("large") / len(videos) < 0.32


def test_authors_vox2_order_follows_the_speaker_list():
    """Positives come round by round over the speakers in the order given
    (the authors cycle through their list in file order), then negatives
    pass by pass over ``itertools.combinations`` of that order, enrolment
    from the earlier speaker; videos shared by two speakers make a
    negative's video_match 1, as the authors' ``v_id1 == v_id2``. Fails on
    the old generator (trials sorted by enrol, test)."""
    order = ["id00061", "id00017", "id00081", "id00042"]
    structure = _sessions(3, 4, order)
    shared = ["id00061--sharedVideo--00001", "id00061--sharedVideo--00002"]
    structure["id00061"]["sharedVideo"] = shared
    structure["id00017"]["sharedVideo"] = ["id00017--sharedVideo--00001"]
    trials = tr.voxceleb2_authors_trials(
        structure, n_positive=5, negatives_per_pair=3, seed=1
    )
    positives, negatives = trials[:20], trials[20:]
    assert [t["label"] for t in trials] == [1] * 20 + [0] * 18
    assert [_spk(t["enrol"]) for t in positives] == order * 5
    assert [_spk(t["test"]) for t in positives] == order * 5
    pairs = list(itertools.combinations(order, 2))
    assert [(_spk(t["enrol"]), _spk(t["test"])) for t in negatives] == (
        pairs * 3
    )
    for trial in negatives:
        same = _video(trial["enrol"]) == _video(trial["test"])
        assert trial["video_match"] == int(same)


def test_authors_vox2_is_seeded():
    """The same seed gives the same list, another seed another; the order
    of videos and utterances inside a speaker does not matter. (The old
    generator is seeded too: this guards the new one against unseeded
    draws.)"""
    structure = _sessions(4, 5, ["id00003", "id00001", "id00002"])
    first = tr.voxceleb2_authors_trials(structure, 20, 5, seed=7)
    shuffled = {
        s: {v: list(reversed(u)) for v, u in reversed(videos.items())}
        for s, videos in structure.items()
    }
    assert tr.voxceleb2_authors_trials(shuffled, 20, 5, seed=7) == first
    assert tr.voxceleb2_authors_trials(structure, 20, 5, seed=8) != first


def test_authors_vox2_small_speakers_fall_back(caplog):
    """Where the authors' script crashes or loops, ours falls back: a
    one-video speaker (theirs: ``random.sample`` error) gets only
    same-video positives; one whose videos hold one utterance each
    (theirs: an endless loop) only two-video positives; a one-utterance
    speaker no positive but its negatives; a speaker or pair with fewer
    distinct pairs than asked gives each once, with a warning naming it.
    Fails on the old generator, which has no per-speaker or per-pair
    count (it shrinks the whole list)."""
    structure = {
        "id00001": {"v": [f"id00001--v--{n:05d}" for n in range(6)]},
        "id00002": {f"v{n}": [f"id00002--v{n}--00001"] for n in range(6)},
        "id00003": {"v": ["id00003--v--00001"]},
        "id00004": _sessions(2, 2, ["id00004"])["id00004"],
    }
    with caplog.at_level("WARNING", logger="data_prep.trials"):
        trials = tr.voxceleb2_authors_trials(
            structure, n_positive=10, negatives_per_pair=5, seed=0
        )
    positives = collections.defaultdict(list)
    for trial in trials:
        if trial["label"] == 1:
            positives[_spk(trial["enrol"])].append(trial["video_match"])
    assert positives["id00001"] == [1] * 10
    assert positives["id00002"] == [0] * 10
    assert "id00003" not in positives
    assert len(positives["id00004"]) == 6  # all its pairs, once each
    pairs = collections.Counter(
        (_spk(t["enrol"]), _spk(t["test"])) for t in trials if t["label"] == 0
    )
    assert pairs[("id00003", "id00004")] == 4  # 1 x 4 utterances
    assert set(pairs.values()) == {4, 5} and len(pairs) == 6
    assert len({frozenset((t["enrol"], t["test"])) for t in trials}) == len(
        trials
    )
    message = caplog.text
    assert "id00003 (0)" in message and "id00004 (6)" in message
    assert "id00003 & id00004 (4)" in message


def test_authors_vox2_refuses_impossible_requests():
    with pytest.raises(ValueError, match="need two"):
        tr.voxceleb2_authors_trials(_sessions(2, 2, ["id00001"]))
    singles = {s: {"v": [f"{s}--v--1"]} for s in ("id00001", "id00002")}
    with pytest.raises(ValueError, match="has two utterances"):
        tr.voxceleb2_authors_trials(singles)
    with pytest.raises(ValueError, match="within_video_share"):
        tr.voxceleb2_authors_trials(singles, within_video_share=1.5)
    with pytest.raises(ValueError, match="n_positive"):
        tr.voxceleb2_authors_trials(singles, n_positive=-1)
