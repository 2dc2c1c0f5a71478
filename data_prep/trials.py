"""Trial lists: writing and seeded balanced generation (reading re-imported).

A trial is a dict ``{"enrol": id, "test": id, "label": 0 or 1, ...}`` whose
other keys are meta-match columns (``gender_match``, ``accent_match``...).
The readers live in :mod:`unipool_lobes.scoring.trials` (scoring reads
trial lists without data preparation) and are re-imported here. Three file
forms are handled: our CSV (``enrol,test,label`` + match
columns), the VoxCeleb text form (``label enrol.wav test.wav``) and the
UniPool authors' ``trials-*.csv`` (``LABEL,SAMPLE1,SAMPLE2`` + upper-case
match columns, paths like ``p329/p329_050.wav``).

Balanced generation (:func:`balanced_trials`) follows the rule of the
authors' published lists:

* as many negative as positive trials;
* positives spread evenly over the speakers, each a distinct pair of two
  different utterances of one speaker;
* negatives stratified by meta-match cell: by default the four cells of
  (same gender?, same accent?) each get the same share of the negatives
  (the published VCTK lists hold 25.0 +- 0.3 % of their negatives in each
  cell); inside a cell the share is spread evenly over the speaker pairs of
  that cell, utterances drawn at random. Age band and region matches are
  recorded, not stratified, as in the published lists. A cell (speaker,
  pair) with too few candidates gives its unused share to the others.
* an unknown (empty) meta value never matches.

The VoxCeleb2 test list follows instead the rule of the authors' own
sampler (:func:`voxceleb2_authors_trials`): a fixed number of positives per
speaker, each drawn within one video or across two by a fair coin, and each
speaker pair used the same number of times as negatives.

Authors
 * unipool-sv developers 2026
"""

import csv
import itertools
import logging
import pathlib

import numpy as np

from data_prep.common import atomic_open, read_csv

# Reading trial lists is scoring: one implementation, re-exported here
# (``name as name``) for the callers of data_prep.trials.
from unipool_lobes.scoring.trials import (
    TRIAL_COLUMNS as TRIAL_COLUMNS,
    _label as _label,
    _number as _number,
    basename_id as basename_id,
    check_trial_pairs as check_trial_pairs,
    read_paper_trials as read_paper_trials,
    read_trials as read_trials,
    read_trials_csv as read_trials_csv,
    read_voxceleb_trials as read_voxceleb_trials,
    voxceleb_id_to_path as voxceleb_id_to_path,
    voxceleb_path_to_id as voxceleb_path_to_id,
)

logger = logging.getLogger(__name__)

# Meta key -> the match column it gives (names of the published lists).
MATCH_COLUMNS = {
    "gender": "gender_match",
    "hard_age": "hard_age_match",
    "age": "soft_age_match",
    "accent": "accent_match",
    "region": "region_match",
}


# ------------------------------------------------------------------ our CSV
def write_trials_csv(path, trials):
    """Writes trials as CSV: ``enrol,test,label`` + their match columns.

    Arguments
    ---------
    path : str or path
        The CSV file (written atomically).
    trials : list of dict
        Trials; extra keys become columns in first-seen order.

    Returns
    -------
    pathlib.Path
        The path written.

    Example
    -------
    >>> path = getfixture("tmp_path") / "trials.csv"
    >>> trial = {"enrol": "a_1", "test": "a_2", "label": 1, "gender_match": 1}
    >>> _ = write_trials_csv(path, [trial])
    >>> print(path.read_text().strip())
    enrol,test,label,gender_match
    a_1,a_2,1,1
    """
    columns = list(TRIAL_COLUMNS)
    for trial in trials:
        columns += [key for key in trial if key not in columns]
    with atomic_open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(trials)
    return pathlib.Path(path)


# --------------------------------------------------------- VoxCeleb text form
def write_voxceleb_trials(path, trials, id_to_path=voxceleb_id_to_path):
    """Writes trials in the VoxCeleb text form ``label enrol.wav test.wav``.

    Arguments
    ---------
    path : str or path
        The text file (written atomically).
    trials : list of dict
        Trials with ``enrol``, ``test`` and ``label``.
    id_to_path : callable
        Maps an utterance ID to the path written in the file.

    Returns
    -------
    pathlib.Path
        The path written.

    Example
    -------
    >>> path = getfixture("tmp_path") / "veri.txt"
    >>> trial = {"enrol": "id1--v--00001", "test": "id2--w--00002", "label": 0}
    >>> _ = write_voxceleb_trials(path, [trial])
    >>> print(path.read_text().strip())
    0 id1/v/00001.wav id2/w/00002.wav
    """
    with atomic_open(path, "w") as out:
        for trial in trials:
            out.write(
                f"{int(trial['label'])} {id_to_path(trial['enrol'])} "
                f"{id_to_path(trial['test'])}\n"
            )
    return pathlib.Path(path)


# ---------------------------------------------------------- the paper's lists
def read_paper_speakers(path):
    """Reads the authors' ``speaker-*.csv`` (an ``ID`` column + meta).

    Arguments
    ---------
    path : str or path
        The published speaker list.

    Returns
    -------
    dict
        ``{speaker_id: {column: value}}`` in file order (str values).

    Raises
    ------
    ValueError
        When the file has no ``ID`` column or repeats a speaker.

    Example
    -------
    >>> path = getfixture("tmp_path") / "speaker-test.csv"
    >>> _ = path.write_text("ID,GENDER,AGE\\np329,F,23\\n")
    >>> read_paper_speakers(path)
    {'p329': {'GENDER': 'F', 'AGE': '23'}}
    """
    rows = read_csv(path)
    if rows and "ID" not in rows[0]:
        raise ValueError(f"{path}: no ID column in {list(rows[0])}")
    speakers = {}
    for line, row in enumerate(rows, start=2):
        speaker = row.pop("ID").strip()
        if speaker in speakers:
            raise ValueError(f"{path}:{line}: speaker {speaker} repeated")
        speakers[speaker] = row
    return speakers


# --------------------------------------------------------- balanced generator
def age_bands(ages, n_bands=3):
    """Equal-width age bands over the ages given (the authors' ``AGE3``).

    Arguments
    ---------
    ages : dict
        ``{speaker_id: age}``; speakers whose age is not a number get no
        band.
    n_bands : int
        Number of bands between the youngest and the oldest.

    Returns
    -------
    dict
        ``{speaker_id: band index}`` (0 = youngest band).

    Example
    -------
    >>> age_bands({"a": 18, "b": 20, "c": 30, "d": 40})
    {'a': 0, 'b': 0, 'c': 1, 'd': 2}
    """
    numeric = {s: _number(a) for s, a in ages.items()}
    numeric = {s: a for s, a in numeric.items() if isinstance(a, int | float)}
    if not numeric:
        return {}
    low, high = min(numeric.values()), max(numeric.values())
    width = (high - low) / n_bands or 1.0
    return {
        speaker: min(int((age - low) / width), n_bands - 1)
        for speaker, age in numeric.items()
    }


def meta_matches(meta1, meta2, band1=None, band2=None):
    """Match flags of two speakers' meta, as the published lists record them.

    Arguments
    ---------
    meta1, meta2 : dict
        Speaker meta with any of ``gender``, ``age``, ``accent``,
        ``region``.
    band1, band2 : int, optional
        The speakers' age bands (see :func:`age_bands`).

    Returns
    -------
    dict
        ``{match column: 0 or 1}`` for each meta key both speakers have;
        an empty value never matches.

    Example
    -------
    >>> meta_matches({"gender": "F", "age": 23}, {"gender": "F", "age": 25})
    {'gender_match': 1, 'hard_age_match': 0}
    """
    flags = {}
    for key in ("gender", "age", "soft_age", "accent", "region"):
        if key == "soft_age":
            if band1 is not None and band2 is not None:
                flags["soft_age_match"] = int(band1 == band2)
        elif key in meta1 and key in meta2:
            value1, value2 = str(meta1[key]).strip(), str(meta2[key]).strip()
            column = "hard_age_match" if key == "age" else MATCH_COLUMNS[key]
            flags[column] = int(bool(value1) and value1 == value2)
    return flags


def _allocate(total, capacities, rng):
    """Spreads ``total`` as evenly as possible over bins with capacities.

    Bins that fill up pass their unused share to the others; the last
    indivisible units go to randomly chosen bins.
    """
    capacities = np.asarray(capacities, dtype=np.int64)
    allocation = np.zeros_like(capacities)
    remaining = min(int(total), int(capacities.sum()))
    while remaining > 0:
        open_bins = np.flatnonzero(allocation < capacities)
        share = remaining // len(open_bins)
        if share == 0:
            chosen = rng.choice(open_bins, remaining, replace=False)
            allocation[chosen] += 1
            break
        give = np.minimum(share, capacities[open_bins] - allocation[open_bins])
        allocation[open_bins] += give
        remaining -= int(give.sum())
    return allocation


def _sample_pairs_within(n_items, count, rng):
    """``count`` distinct unordered index pairs (i < j) of ``n_items``."""
    first, second = np.triu_indices(n_items, k=1)
    chosen = rng.choice(len(first), count, replace=False)
    return first[chosen], second[chosen]


def _sample_pairs_across(n_first, n_second, count, rng):
    """``count`` distinct pairs (i, j), i from one set and j from another."""
    chosen = rng.choice(n_first * n_second, count, replace=False)
    return chosen // n_second, chosen % n_second


def balanced_trials(
    utterances,
    speaker_meta=None,
    n_per_class=8000,
    seed=1234,
    stratify_by=("gender", "accent"),
    bands=None,
):
    """Seeded balanced trial list with meta-stratified negatives.

    The rule is given in the module docstring: equal positive and negative
    counts, positives even over speakers, negatives with an equal share for
    each cell of the ``stratify_by`` match flags and even over the speaker
    pairs of a cell. No trial pairs an utterance with itself and no pair
    appears twice. The same input and seed give the same list whatever the
    input order.

    Arguments
    ---------
    utterances : dict
        ``{speaker_id: [utterance ids]}``.
    speaker_meta : dict, optional
        ``{speaker_id: {"gender": .., "age": .., "accent": .., "region":
        ..}}``; without it negatives are not stratified.
    n_per_class : int
        Positive trials wanted (and as many negatives); fewer when the
        speakers cannot give that many distinct pairs.
    seed : int
        Seed of every random choice.
    stratify_by : tuple of str
        Meta keys whose match flags define the negative cells: any of
        ``gender``, ``age`` (age band), ``hard_age``, ``accent``,
        ``region``.
    bands : dict, optional
        ``{speaker_id: age band}``; computed over the given speakers with
        :func:`age_bands` when not given.

    Returns
    -------
    list of dict
        Trials sorted by (enrol, test): ``enrol``, ``test``, ``label`` and
        the match columns of :func:`meta_matches`.

    Raises
    ------
    ValueError
        When no positive or no negative trial can be made (fewer than two
        speakers, or no speaker with two utterances), or a ``stratify_by``
        key is unknown.

    Example
    -------
    >>> utts = {s: [f"{s}_{n}" for n in range(4)] for s in ("a", "b", "c")}
    >>> genders = {"a": "F", "b": "F", "c": "M"}
    >>> meta = {s: {"gender": g} for s, g in genders.items()}
    >>> trials = balanced_trials(utts, meta, n_per_class=6, seed=0)
    >>> sum(t["label"] for t in trials), len(trials)
    (6, 12)
    >>> sum(t["gender_match"] for t in trials if t["label"] == 0)
    3
    """
    unknown = [key for key in stratify_by if key not in MATCH_COLUMNS]
    if unknown:
        raise ValueError(
            f"unknown stratify_by keys {unknown}; use {sorted(MATCH_COLUMNS)}"
        )
    rng = np.random.default_rng(seed)
    speaker_meta = speaker_meta or {}
    speakers = sorted(s for s in utterances if utterances[s])
    utts = {s: sorted(set(utterances[s])) for s in speakers}
    if bands is None:
        bands = age_bands(
            {
                s: speaker_meta[s]["age"]
                for s in speakers
                if "age" in speaker_meta.get(s, {})
            }
        )

    def _flags(first, second):
        return meta_matches(
            speaker_meta.get(first, {}),
            speaker_meta.get(second, {}),
            bands.get(first),
            bands.get(second),
        )

    sizes = np.array([len(utts[s]) for s in speakers], dtype=np.int64)
    pairs = list(itertools.combinations(range(len(speakers)), 2))
    positive_capacity = sizes * (sizes - 1) // 2
    pair_capacity = np.array([sizes[i] * sizes[j] for i, j in pairs])
    n_trials = min(
        int(n_per_class), int(positive_capacity.sum()), int(pair_capacity.sum())
    )
    if n_trials < 1:
        raise ValueError(
            f"cannot make balanced trials from {len(speakers)} speaker(s) "
            f"with {sizes.tolist()} utterances: need two speakers and one "
            "speaker with two utterances"
        )
    trials = []

    def _add(first, second, index1, index2, label, match):
        flip = rng.integers(0, 2, size=len(index1)).astype(bool)
        for i, j, swap in zip(index1, index2, flip, strict=True):
            enrol, test = utts[first][i], utts[second][j]
            if swap:
                enrol, test = test, enrol
            trials.append(
                {"enrol": enrol, "test": test, "label": label, **match}
            )

    for speaker, count in zip(
        speakers, _allocate(n_trials, positive_capacity, rng), strict=True
    ):
        if count:
            index1, index2 = _sample_pairs_within(
                len(utts[speaker]), count, rng
            )
            _add(speaker, speaker, index1, index2, 1, _flags(speaker, speaker))

    cells = {}
    for number, (i, j) in enumerate(pairs):
        match = _flags(speakers[i], speakers[j])
        key = tuple(match.get(MATCH_COLUMNS[k], 0) for k in stratify_by)
        cells.setdefault(key, []).append(number)
    cell_keys = sorted(cells)
    cell_capacity = [pair_capacity[cells[key]].sum() for key in cell_keys]
    for key, cell_count in zip(
        cell_keys, _allocate(n_trials, cell_capacity, rng), strict=True
    ):
        members = cells[key]
        for number, count in zip(
            members,
            _allocate(cell_count, pair_capacity[members], rng),
            strict=True,
        ):
            if not count:
                continue
            first, second = (speakers[k] for k in pairs[number])
            index1, index2 = _sample_pairs_across(
                len(utts[first]), len(utts[second]), count, rng
            )
            _add(first, second, index1, index2, 0, _flags(first, second))
    trials.sort(key=lambda trial: (trial["enrol"], trial["test"]))
    return trials


# ------------------------------------------------- the authors' Vox2 sampler
# Rejected draws (pair already in the list) before the free pairs are listed.
_REDRAWS = 64


def _pair_key(first, second):
    return (first, second) if first < second else (second, first)


class _PairSource:
    """Ordered utterance pairs drawn as the authors' sampler draws them.

    A cell (two videos, or one video twice) is drawn uniformly, then one
    utterance of each video, two distinct ones when the cell is one video.
    ``cell(k)`` gives the two ``(video, utterances)`` of cell ``k``;
    ``capacity`` is the number of distinct unordered pairs of the cells.
    """

    def __init__(self, n_cells, cell, capacity):
        self.n_cells, self.cell, self.capacity = n_cells, cell, capacity
        self.n_used = 0

    def _pick(self, first, second, rng):
        i = int(rng.integers(len(first[1])))
        if first is second:
            j = int(rng.integers(len(first[1]) - 1))
            j += j >= i
        else:
            j = int(rng.integers(len(second[1])))
        return first[1][i], second[1][j]

    def draw(self, used, rng):
        """A pair not in ``used`` (drawn from the authors' distribution
        restricted to such pairs), with its two videos; None when the
        cells hold no such pair."""
        if self.n_used >= self.capacity:
            return None
        for _ in range(_REDRAWS):
            first, second = self.cell(int(rng.integers(self.n_cells)))
            pair = self._pick(first, second, rng)
            if _pair_key(*pair) not in used:
                self.n_used += 1
                return pair, first[0], second[0]
        # Nearly exhausted: list the free pairs with their probabilities.
        free, weights = [], []
        for k in range(self.n_cells):
            first, second = self.cell(k)
            n_pairs = len(first[1]) * (len(second[1]) - (first is second))
            for i, one in enumerate(first[1]):
                for j, other in enumerate(second[1]):
                    if (first is second and i == j) or (
                        _pair_key(one, other) in used
                    ):
                        continue
                    free.append(((one, other), first[0], second[0]))
                    weights.append(1.0 / n_pairs)
        weights = np.asarray(weights)
        self.n_used += 1
        return free[rng.choice(len(free), p=weights / weights.sum())]


def _speaker_sources(videos):
    """The within-video and across-video positive sources of a speaker."""
    eligible = [video for video in videos if len(video[1]) > 1]
    within = _PairSource(
        len(eligible),
        lambda k: (eligible[k], eligible[k]),
        sum(len(u) * (len(u) - 1) // 2 for _, u in eligible),
    )
    n_videos = len(videos)
    sizes = np.array([len(u) for _, u in videos])

    def _across_cell(k):
        first, rest = divmod(k, n_videos - 1)
        return videos[first], videos[rest + (rest >= first)]

    across = _PairSource(
        n_videos * (n_videos - 1),
        _across_cell,
        int((sizes.sum() ** 2 - (sizes**2).sum()) // 2),
    )
    return {1: within, 0: across}


def _pair_source(videos1, videos2):
    """The negative source of two speakers: any video of each."""
    n2 = len(videos2)
    return _PairSource(
        len(videos1) * n2,
        lambda k: (videos1[k // n2], videos2[k % n2]),
        sum(len(u) for _, u in videos1) * sum(len(u) for _, u in videos2),
    )


def voxceleb2_authors_trials(
    utterances_by_video,
    n_positive=272,
    negatives_per_pair=5,
    within_video_share=0.5,
    seed=1234,
):
    """The VoxCeleb2 test trial list by the rule of the UniPool authors.

    Their sampler (``split-VoxCeleb-2-balancedtrials.py``; their list
    itself is not published) draws, with one random generator:

    * positives: ``n_positive`` rounds over the speakers in list order
      (speaker 1, 2, ..., last, 1, 2, ...). For each trial a coin gives
      "same video" with probability ``within_video_share``, independently
      per trial (so a speaker's same-video count is binomial, not a
      quota). Same video: a video drawn uniformly among the speaker's
      videos holding two or more utterances, then two distinct utterances
      of it in random order. Two videos: two distinct videos drawn
      uniformly (ordered), one utterance uniformly from each.
    * negatives: ``negatives_per_pair`` passes over all unordered speaker
      pairs in ``itertools.combinations`` order of the speaker list; the
      enrolment comes from the earlier speaker. For each speaker a video
      is drawn uniformly, then an utterance of it uniformly (videos weigh
      the same, whatever their size).
    * every trial records ``video_match``: whether the two videos have the
      same ID (the authors' ``VSRC_MATCH``; for negatives it is 1 only
      when two speakers' videos share a YouTube ID).

    The list keeps their order: all positives, then all negatives. With
    the 118 VoxCeleb2 test speakers and the defaults (their 64,000
    trials: 272 = ceil(32,000 / 118), 5 = ceil(32,000 / 6,903)) it holds
    32,096 positives and 34,515 negatives.

    Where their script repeats, crashes or loops, this one does not:

    * a trial pair (either order) is never repeated: a draw giving a pair
      already in the list is redrawn from the same distribution (their
      sampler draws with replacement; a repeated trial would count twice
      in the EER and :func:`check_trial_pairs` refuses it);
    * a speaker with one video (theirs: ``random.sample`` error) draws its
      two-video trials within that video, and one whose videos hold one
      utterance each (theirs: an endless loop) draws its same-video trials
      across two videos; more generally a kind of pair the speaker has no
      unused pair of is replaced by the other kind;
    * a speaker (or speaker pair) with fewer distinct pairs than asked
      gives all it has (a warning names it); a speaker with a single
      utterance gives no positive but takes part in the negatives;
    * speakers without utterances are left out.

    Arguments
    ---------
    utterances_by_video : dict
        ``{speaker_id: {video_id: [utterance IDs]}}``. Speakers are used
        in the order given (the authors follow their speaker list's file
        order); videos and utterances are sorted, so their order does not
        matter.
    n_positive : int
        Positive trials of each speaker.
    negatives_per_pair : int
        Negative trials of each unordered speaker pair.
    within_video_share : float
        Probability that a positive trial is drawn within one video.
    seed : int
        Seed of the generator (:func:`numpy.random.default_rng`).

    Returns
    -------
    list of dict
        Trials ``enrol``, ``test``, ``label``, ``video_match``: positives
        round by round, then negatives pass by pass.

    Raises
    ------
    ValueError
        When fewer than two speakers have utterances, no speaker has two,
        or a count or the share is out of range.

    Example
    -------
    >>> utts = {
    ...     s: {v: [f"{s}--{v}--{n:05d}" for n in (1, 2, 3)] for v in "AB"}
    ...     for s in ("id00017", "id00061", "id00081")
    ... }
    >>> trials = voxceleb2_authors_trials(utts, n_positive=4, seed=0)
    >>> sum(t["label"] for t in trials), len(trials)
    (12, 27)
    >>> [t["enrol"][:7] for t in trials[:4]]
    ['id00017', 'id00061', 'id00081', 'id00017']
    >>> trials[-1]["enrol"][:7], trials[-1]["test"][:7]
    ('id00061', 'id00081')
    """
    for name, value in (
        ("n_positive", n_positive),
        ("negatives_per_pair", negatives_per_pair),
    ):
        if int(value) != value or value < 0:
            raise ValueError(f"{name} must be a count >= 0, got {value!r}")
    if not 0.0 <= within_video_share <= 1.0:
        raise ValueError(
            f"within_video_share must be in [0, 1], got {within_video_share}"
        )
    videos = {}
    for speaker, by_video in utterances_by_video.items():
        listed = [(v, sorted(set(u))) for v, u in sorted(by_video.items())]
        if any(utts for _, utts in listed):
            videos[speaker] = [(v, utts) for v, utts in listed if utts]
    speakers = list(videos)
    if len(speakers) < 2:
        raise ValueError(
            f"cannot draw negative trials from {len(speakers)} speaker(s) "
            f"with utterances ({', '.join(speakers) or 'none'}): need two"
        )
    rng = np.random.default_rng(seed)
    trials, used, short = [], set(), {}

    def _add(drawn, label):
        (enrol, test), video1, video2 = drawn
        used.add(_pair_key(enrol, test))
        trials.append(
            {
                "enrol": enrol,
                "test": test,
                "label": label,
                "video_match": int(video1 == video2),
            }
        )

    sources = {
        speaker: _speaker_sources(videos[speaker]) for speaker in speakers
    }
    for _ in range(int(n_positive)):
        for speaker in speakers:
            if speaker in short:
                continue
            same_video = int(rng.random() < within_video_share)
            drawn = sources[speaker][same_video].draw(used, rng)
            if drawn is None:
                drawn = sources[speaker][1 - same_video].draw(used, rng)
            if drawn is None:
                short[speaker] = sum(
                    s.n_used for s in sources[speaker].values()
                )
                continue
            _add(drawn, 1)
    if len(trials) == 0 and n_positive:
        raise ValueError(
            f"no positive trial: none of the {len(speakers)} speakers "
            f"({', '.join(speakers)}) has two utterances"
        )
    pairs = list(itertools.combinations(speakers, 2))
    pair_sources = {}
    for _ in range(int(negatives_per_pair)):
        for pair in pairs:
            if pair not in pair_sources:
                pair_sources[pair] = _pair_source(*(videos[s] for s in pair))
            drawn = pair_sources[pair].draw(used, rng)
            if drawn is None:
                short[" & ".join(pair)] = pair_sources[pair].n_used
                continue
            _add(drawn, 0)
    if short:
        logger.warning(
            "VoxCeleb2 trials: %d speaker(s) or speaker pair(s) have fewer "
            "distinct pairs than asked (%d positives, %d negatives) and "
            "give all they have: %s",
            len(short),
            n_positive,
            negatives_per_pair,
            ", ".join(f"{key} ({count})" for key, count in short.items()),
        )
    return trials
