"""VoxCeleb preparation: manifests and trial lists for both paper settings.

Reads VoxCeleb1 and VoxCeleb2 as 16 kHz WAV trees, from one or several
roots, each laid out as SpeechBrain expects (``<root>/wav/idXXXXX/<video>/
NNNNN.wav``), as the UniPool authors keep them (``<root>/vox1_dev_wav/``,
``vox1_test_wav/``, ``vox2_dev_wav/``, ``vox2_test_wav/``, each holding
``idXXXXX/<video>/NNNNN.wav``), or as a folder of speaker folders. VoxCeleb2
is distributed as m4a: convert it first with :func:`convert_m4a` (ffmpeg).

The two settings of the paper (speaker lists published by the authors):

* ``"vox1"``: train on VoxCeleb1 dev (1,211 speakers), validate on a trial
  list drawn from the VoxCeleb2 test speakers (118), test on Vox1-O
  (the authors' ``trials-vox1.csv``, 37,720 trials over 40 speakers);
* ``"vox2"``: train on VoxCeleb2 dev (5,994 speakers), validate on Vox1-O,
  test on the VoxCeleb2 test list; Vox1-E and Vox1-H
  (``list_test_all2.txt``, ``list_test_hard2.txt``) are prepared as extra
  test sets when found;
* ``"vox2_sota"`` (the LAP authors' pipeline, not the UniPool paper's):
  train on VoxCeleb2 dev, report Vox1-O (and Vox1-E/H when found), and
  select checkpoints on the trial list drawn from the VoxCeleb2 test
  speakers, held out from training and from every reported list (the LAP
  authors select on the reported lists themselves: the recipes offer that
  only as the named option ``select_on: test``).

The authors did not publish their VoxCeleb2 trial list (test list of
``"vox2"``, validation list of ``"vox1"``). Ours is drawn, seeded, by the
rule of their sampler (:func:`data_prep.trials.voxceleb2_authors_trials`):
ceil(32,000 / speakers) positives per speaker, each taken within one video
or across two by a fair coin, and each speaker pair used ceil(32,000 /
pairs) times as negatives; over the 118 test speakers, 272 x 118 = 32,096
positives and 5 x 6,903 = 34,515 negatives. ``vox2_trials_rule=
"balanced"`` draws it with :func:`data_prep.trials.balanced_trials`
instead (exactly 32,000 of each, positive pairs uniform over a speaker's
utterances, so most from two videos). The ``video_match`` column of every
trial list says which pairs share a video.

Durations come from the WAV headers, speaker folders are scanned in
parallel into resumable caches, and manifests are streamed from them (see
:mod:`data_prep.scan`), so VoxCeleb2's 1.1M files need neither decoding nor
much memory. Manifest IDs are SpeechBrain's: ``id10270--x6uYqmx31kE--00001``,
with the meta column ``video``.

Command line::

    python -m data_prep.voxceleb convert-m4a SRC DST [--workers 8]
    python -m data_prep.voxceleb prepare --data_folders A,B --save_folder OUT

Authors
 * unipool-sv developers 2026
"""

import argparse
import logging
import os
import pathlib
import re
import shutil
import subprocess
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from data_prep.common import (
    ProblemReport,
    atomic_open,
    child_dies_with_parent,
    default_num_workers,
    mark_prepared,
    paper_lists_folder,
    paper_lists_option,
    start_preparation,
    trials_with_audio,
    write_text_atomic,
)
from data_prep.scan import (
    cached_ids,
    read_wav_header,
    scan_speakers,
    write_manifest_from_cache,
)
from data_prep.trials import (
    balanced_trials,
    read_paper_speakers,
    read_paper_trials,
    read_trials_csv,
    read_voxceleb_trials,
    voxceleb2_authors_trials,
    voxceleb_path_to_id,
    write_trials_csv,
)

logger = logging.getLogger(__name__)

# The authors' published lists (MIT), pinned to the commit they were read at.
PAPER_LISTS_URL = (
    "https://raw.githubusercontent.com/sadPororo/UniPool-SV/"
    "4d02ffd4af3364c2009ba99b0a9b5a804e24e782/data/VoxCeleb/preprocess"
)
SPLITS = ("train", "valid", "test")
SPEAKER_FOLDER = re.compile(r"id\d+")
# The authors' folders under their wav16/ root.
AUTHORS_FOLDERS = (
    "vox1_dev_wav",
    "vox1_test_wav",
    "vox2_dev_wav",
    "vox2_test_wav",
)
# Training speakers of each setting, and which list validates and tests.
SETTINGS = {
    "vox1": {"train": "vox1-dev", "valid": "vox2", "test": "vox1_o"},
    "vox2": {"train": "vox2-dev", "valid": "vox1_o", "test": "vox2"},
    "vox2_sota": {"train": "vox2-dev", "valid": "vox2", "test": "vox1_o"},
}
VOX2_TEST_SPEAKERS = "vox2-test"
# How the VoxCeleb2 test list is drawn (see vox2_trials).
VOX2_TRIAL_RULES = ("authors", "balanced")
PAPER_VOX1_O = "trials/trials-vox1.csv"
# The cleaned Vox1-E and Vox1-H lists of the VoxCeleb site.
VOX1_EH_FILES = {
    "vox1_e": "list_test_all2.txt",
    "vox1_h": "list_test_hard2.txt",
}
N_EXAMPLES = 5


# ------------------------------------------------------------------ layout
def parse_data_folders(data_folders):
    """The corpus roots, from a path, a list or a comma-separated string.

    Arguments
    ---------
    data_folders : str, path or list
        One root, several roots as a list, or ``"/vox1,/vox2"``.

    Returns
    -------
    list of pathlib.Path
        Absolute roots, in the given order, without repeats.

    Raises
    ------
    ValueError
        When no root is given or a root is not a folder (named).

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> first, second = tmp / "first", tmp / "second"
    >>> first.mkdir()
    >>> second.mkdir()
    >>> roots = parse_data_folders(f"{first}, {second}")
    >>> roots == [first, second]
    True
    """
    if isinstance(data_folders, (str, os.PathLike)):
        data_folders = str(data_folders).split(",")
    roots = []
    for folder in data_folders:
        if not str(folder).strip():
            continue
        root = pathlib.Path(str(folder).strip()).resolve()
        if not root.is_dir():
            raise ValueError(f"data folder {str(folder)!r} is not a folder")
        if root not in roots:
            roots.append(root)
    if not roots:
        raise ValueError("no data folder given (data_folders is empty)")
    return roots


def _speaker_entries(folder):
    """Speaker sub-folders (``idNNNNN``) of a folder, sorted."""
    try:
        with os.scandir(folder) as entries:
            found = [
                (entry.name, entry.path)
                for entry in entries
                if SPEAKER_FOLDER.fullmatch(entry.name) and entry.is_dir()
            ]
    except OSError:
        return []
    return sorted(found)


def find_speaker_folders(roots, problems=None):
    """Finds the speaker folders of VoxCeleb roots in any supported layout.

    Each root is searched for ``wav/idXXXXX``, for the authors'
    ``vox{1,2}_{dev,test}_wav/idXXXXX`` and for ``idXXXXX`` folders of its
    own. A speaker found twice is taken from the first place.

    Arguments
    ---------
    roots : list of path
        The corpus roots.
    problems : ProblemReport, optional
        Receives a line for each speaker found twice.

    Returns
    -------
    dict
        ``{speaker_id: folder}``.

    Raises
    ------
    ValueError
        When a root holds no speaker folder in any layout (named).

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> (root / "wav" / "id10001").mkdir(parents=True)
    >>> (root / "vox2_test_wav" / "id00017").mkdir(parents=True)
    >>> sorted(find_speaker_folders([root]))
    ['id00017', 'id10001']
    """
    folders = {}
    for root in roots:
        root = pathlib.Path(root)
        containers = [root / "wav", *(root / name for name in AUTHORS_FOLDERS)]
        containers.append(root)
        n_found = 0
        for container in containers:
            for speaker, path in _speaker_entries(container):
                n_found += 1
                if speaker in folders:
                    if problems is not None:
                        problems.add(
                            path,
                            f"speaker {speaker} also in {folders[speaker]};"
                            " this copy ignored",
                        )
                    continue
                folders[speaker] = path
        if not n_found:
            raise ValueError(
                f"{root}: no VoxCeleb speaker folder (idNNNNN) found; "
                "expected <root>/wav/idNNNNN/<video>/NNNNN.wav, the "
                "authors' <root>/vox1_test_wav/idNNNNN/... or "
                "<root>/idNNNNN/... (convert VoxCeleb2's m4a to wav first: "
                "python -m data_prep.voxceleb convert-m4a SRC DST)"
            )
    return folders


# ------------------------------------------------------------------ trials
def speaker_of(utterance_id):
    """The speaker of a VoxCeleb utterance ID.

    Arguments
    ---------
    utterance_id : str
        E.g. ``id10270--x6uYqmx31kE--00001``.

    Returns
    -------
    str
        E.g. ``id10270``.

    Example
    -------
    >>> speaker_of("id10270--x6uYqmx31kE--00001")
    'id10270'
    """
    return utterance_id.split("--", 1)[0]


def video_match(enrol, test):
    """1 when two VoxCeleb utterance IDs come from the same video, else 0.

    Arguments
    ---------
    enrol : str
        Utterance ID.
    test : str
        Utterance ID.

    Returns
    -------
    int
        The authors' ``VSRC_MATCH`` flag.

    Example
    -------
    >>> video_match("id1--vidA--00001", "id1--vidA--00002")
    1
    """
    return int(enrol.split("--")[1:2] == test.split("--")[1:2])


def read_trial_list(path):
    """Reads a VoxCeleb trial list in any form, IDs as the manifests name
    them.

    The official text form (``1 id10270/x6uYqmx31kE/00001.wav id10270/
    8jEAjG6SegY/00008.wav``), the authors' CSV (``LABEL,SAMPLE1,SAMPLE2``
    with ``vox1_test_wav/...`` paths) and our CSV (``enrol,test,label``)
    are told apart by their first line.

    Arguments
    ---------
    path : str or path
        The trial list.

    Returns
    -------
    list of dict
        Trials with ``enrol``, ``test`` and ``label`` (the authors' CSV
        adds ``enrol_path`` and ``test_path``).

    Raises
    ------
    ValueError
        On a malformed line (the readers name the file and line).

    Example
    -------
    >>> path = getfixture("tmp_path") / "trials-vox1.csv"
    >>> _ = path.write_text(
    ...     "LABEL,SAMPLE1,SAMPLE2\\n"
    ...     "1,vox1_test_wav/id10270/x6u/00001.wav,"
    ...     "vox1_test_wav/id10270/8jE/00008.wav\\n"
    ... )
    >>> trial = read_trial_list(path)[0]
    >>> trial["enrol"], trial["test"], trial["label"]
    ('id10270--x6u--00001', 'id10270--8jE--00008', 1)
    """
    with open(path, encoding="utf-8") as source:
        header = set(source.readline().strip().split(","))
    if {"LABEL", "SAMPLE1", "SAMPLE2"} <= header:
        return read_paper_trials(path, voxceleb_path_to_id)
    if {"enrol", "test", "label"} <= header:
        return read_trials_csv(path)
    return read_voxceleb_trials(path)


def vox2_trials(utterances, n_per_class=32000, seed=1234, rule="authors"):
    """Draws the VoxCeleb2 test trial list.

    ``rule="authors"`` follows the authors' sampler
    (:func:`data_prep.trials.voxceleb2_authors_trials`) with their counts:
    ``n_per_class`` is their ``total_sample_size // 2``, each speaker gets
    ceil(n_per_class / speakers) positives and each speaker pair
    ceil(n_per_class / pairs) negatives (272 and 5 for the 118 speakers
    and 32,000); trials keep their order (positives, then negatives).
    ``rule="balanced"`` draws exactly ``n_per_class`` of each with
    :func:`data_prep.trials.balanced_trials` (sorted by enrol, test).

    Arguments
    ---------
    utterances : dict
        ``{speaker_id: [utterance IDs]}`` of the VoxCeleb2 test speakers,
        in the order of the authors' speaker list (their sampler cycles
        through it); the video of an ID is its middle part.
    n_per_class : int
        Positive trials wanted, and as many negatives (rounded up to whole
        rounds over speakers and speaker pairs by the authors' rule).
    seed : int
        Seed of the sampler.
    rule : str
        ``"authors"`` or ``"balanced"``.

    Returns
    -------
    list of dict
        Trials (``enrol``, ``test``, ``label``, ``video_match``).

    Raises
    ------
    ValueError
        When the speakers cannot give both positive and negative trials,
        or on an unknown rule.

    Example
    -------
    >>> utts = {
    ...     s: [f"{s}--v{k % 2}--0000{k}" for k in range(4)]
    ...     for s in ("id00061", "id00017", "id00081")
    ... }
    >>> trials = vox2_trials(utts, n_per_class=4, seed=0)
    >>> sum(t["label"] for t in trials), len(trials)
    (6, 12)
    >>> [t["enrol"][:7] for t in trials[:3]]
    ['id00061', 'id00017', 'id00081']
    >>> trials = vox2_trials(utts, n_per_class=4, seed=0, rule="balanced")
    >>> sum(t["label"] for t in trials), len(trials)
    (4, 8)
    >>> sorted(trials[0])
    ['enrol', 'label', 'test', 'video_match']
    """
    if rule == "balanced":
        trials = balanced_trials(utterances, n_per_class=n_per_class, seed=seed)
        for trial in trials:
            trial["video_match"] = video_match(trial["enrol"], trial["test"])
        return trials
    if rule != "authors":
        raise ValueError(
            f"vox2_trials_rule {rule!r}: use one of {list(VOX2_TRIAL_RULES)}"
        )
    by_video = {}
    for speaker, ids in utterances.items():
        for utterance in ids:
            video = utterance.split("--")[1]
            by_video.setdefault(speaker, {}).setdefault(video, [])
            by_video[speaker][video].append(utterance)
    n_speakers = len(by_video)
    n_pairs = max(n_speakers * (n_speakers - 1) // 2, 1)
    return voxceleb2_authors_trials(
        by_video,
        n_positive=-(-n_per_class // max(n_speakers, 1)),
        negatives_per_pair=-(-n_per_class // n_pairs),
        seed=seed,
    )


def find_vox1_eh_lists(roots):
    """Finds the cleaned Vox1-E and Vox1-H lists in the roots.

    Each root and its ``meta/`` folder are searched for
    ``list_test_all2.txt`` (Vox1-E) and ``list_test_hard2.txt`` (Vox1-H).

    Arguments
    ---------
    roots : list of path
        The corpus roots.

    Returns
    -------
    dict
        ``{"vox1_e": path, "vox1_h": path}`` for the lists found.

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> (root / "meta").mkdir()
    >>> _ = (root / "meta" / "list_test_hard2.txt").write_text("")
    >>> list(find_vox1_eh_lists([root]))
    ['vox1_h']
    """
    found = {}
    for name, file_name in VOX1_EH_FILES.items():
        for root in roots:
            for folder in (pathlib.Path(root), pathlib.Path(root) / "meta"):
                if name not in found and (folder / file_name).is_file():
                    found[name] = (folder / file_name).resolve()
    return found


def _text_trial_speakers(path):
    """Speakers named by a trial list (streamed; any form)."""
    speakers = set()
    with open(path, encoding="utf-8") as source:
        for line in source:
            for field in line.replace(",", " ").split()[1:3]:
                speakers.add(speaker_of(voxceleb_path_to_id(field)))
    return speakers


def _stream_text_trials(source, target, available, allow_missing, problems):
    """Converts a large text trial list to our CSV, line by line.

    Trials naming utterances not in ``available`` are dropped and reported
    when ``allow_missing``; otherwise they raise. Returns the set of
    utterance IDs the kept trials use.
    """
    used, missing, n_dropped = set(), [], 0
    with open(source, encoding="utf-8") as lines:
        with atomic_open(target, "w", newline="") as out:
            out.write("enrol,test,label,video_match\n")
            for number, line in enumerate(lines, start=1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 3 or fields[0] not in ("0", "1"):
                    raise ValueError(
                        f"{source}:{number}: expected '<0|1> enrol.wav "
                        f"test.wav', got {line!r}"
                    )
                enrol = voxceleb_path_to_id(fields[1])
                test = voxceleb_path_to_id(fields[2])
                absent = [u for u in (enrol, test) if u not in available]
                if absent:
                    n_dropped += 1
                    if len(missing) < N_EXAMPLES:
                        missing += absent
                    continue
                out.write(
                    f"{enrol},{test},{fields[0]},{video_match(enrol, test)}\n"
                )
                used.update((enrol, test))
            if n_dropped:
                message = (
                    f"{n_dropped} trial(s) name utterances missing from the "
                    f"corpus, e.g. {', '.join(missing[:N_EXAMPLES])}"
                )
                if not allow_missing:
                    raise ValueError(
                        f"{source}: {message}. Check data_folders, or set "
                        "allow_missing_trials=True to drop these trials."
                    )
                problems.add(source, message + "; those trials dropped")
    return used


# ------------------------------------------------------------- preparation
def _examples(items):
    """A few items for a message."""
    items = sorted(items)
    more = ", ..." if len(items) > N_EXAMPLES else ""
    return ", ".join(items[:N_EXAMPLES]) + more


def _list_names(setting, vox1_o_trials):
    """Relative paths of the published lists a setting needs."""
    names = [
        f"speakers/speaker-{SETTINGS[setting]['train']}.csv",
        f"speakers/speaker-{VOX2_TEST_SPEAKERS}.csv",
    ]
    if vox1_o_trials is None:
        names.append(PAPER_VOX1_O)
    return names


def _eh_lists(vox1_eh_trials, roots):
    """The Vox1-E/H lists asked for: ``"auto"``, None or a dict."""
    if vox1_eh_trials is None:
        return {}
    if vox1_eh_trials == "auto":
        return find_vox1_eh_lists(roots)
    lists = {}
    for name, path in dict(vox1_eh_trials).items():
        if not pathlib.Path(path).is_file():
            raise ValueError(f"vox1_eh_trials[{name!r}]: {path} is not a file")
        lists[str(name)] = pathlib.Path(path).resolve()
    return lists


def _check_disjoint(train_speakers, held_out, setting):
    """Raises when a trial list uses a training speaker."""
    for name, speakers in held_out.items():
        shared = set(train_speakers) & speakers
        if shared:
            raise ValueError(
                f"the {name} trials use {len(shared)} training speaker(s) "
                f"of the {setting} setting ({_examples(shared)}): a "
                "verification list must hold unseen speakers"
            )


def _report_missing(listed, folders, what, problems):
    """Reports listed speakers without a folder; returns those present."""
    present = [s for s in listed if s in folders]
    absent = sorted(set(listed) - set(present))
    if absent:
        problems.add(
            what,
            f"{len(absent)} of {len(set(listed))} listed speakers have no "
            f"folder in data_folders ({_examples(absent)}); left out",
        )
    return present


def _with_video_match(trials):
    """Trials with the ``video_match`` column added."""
    return [
        {**trial, "video_match": video_match(trial["enrol"], trial["test"])}
        for trial in trials
    ]


def prepare_voxceleb(
    data_folders,
    save_folder,
    setting="vox1",
    split_source="paper",
    paper_lists=None,
    vox1_o_trials=None,
    vox1_eh_trials="auto",
    seed=1234,
    n_vox2_trials_per_class=32000,
    vox2_trials_rule="authors",
    sample_rate=16000,
    num_workers=None,
    allow_missing_trials=False,
    progress=True,
    min_duration=0.05,
    skip_prep=False,
):
    """Prepares VoxCeleb for one of the paper's two settings.

    Writes ``train.csv``, ``valid.csv``, ``test.csv`` (columns ``ID,
    duration, wav, start, stop, spk_id, video``; ID
    ``id10270--x6uYqmx31kE--00001``, duration in seconds, start/stop in
    samples, ``wav`` an absolute path) and ``valid_trials.csv``,
    ``test_trials.csv`` (``enrol, test, label, video_match``). Training
    holds every utterance of the setting's training speakers; valid and
    test manifests hold exactly the utterances their trials use. In the
    ``vox2`` setting, the Vox1-E/H lists found (or given) add
    ``test_vox1_e.csv`` + ``test_vox1_e_trials.csv`` (and ``_h``).

    Only the speakers a setting uses are scanned, into resumable caches in
    ``<save_folder>/scan_cache`` (a killed scan resumes; see
    :mod:`data_prep.scan`). Problems (unreadable, truncated, too short or
    wrong-rate files, utterance IDs found twice, listed speakers without
    audio or found in two roots, dropped trials) go to
    ``prepare_problems.txt`` and the good data is used. Stereo files are
    kept (the training pipeline down-mixes), and so are silent ones
    (telling silence would take decoding every file). The preparation is
    skipped when its outputs exist and were made with the same options
    (recorded last, in ``prepare_voxceleb_opts.json``).

    Arguments
    ---------
    data_folders : str, path or list
        VoxCeleb roots (a list or ``"a,b"``); see :func:`find_speaker_folders`
        for the layouts. The ``vox1`` setting needs VoxCeleb1 and the
        VoxCeleb2 test speakers; ``vox2`` and ``vox2_sota`` need VoxCeleb2
        dev and test and the VoxCeleb1 test speakers.
    save_folder : str or path
        Where manifests, trials and the scan caches are written.
    setting : str
        ``"vox1"``, ``"vox2"`` or ``"vox2_sota"`` (see the module
        docstring).
    split_source : str
        ``"paper"``: the authors' speaker lists (the official VoxCeleb
        dev/test speakers) and their Vox1-O list.
    paper_lists : str or path, optional
        The authors' ``preprocess`` folder (``speakers/``, ``trials/``) or
        a base URL; default :data:`PAPER_LISTS_URL`.
    vox1_o_trials : str or path, optional
        A Vox1-O list to use instead of the authors' ``trials-vox1.csv``
        (37,720 trials, the original list), e.g. the cleaned
        ``veri_test2.txt`` (37,611); any form of :func:`read_trial_list`.
    vox1_eh_trials : str, dict or None
        ``"auto"`` (look for ``list_test_all2.txt`` and
        ``list_test_hard2.txt`` in the roots and their ``meta/``), a dict
        ``{"vox1_e": path, "vox1_h": path}``, or None. Used in the settings
        that train on VoxCeleb2 only (``vox1`` trains on their speakers).
    seed : int
        Seed of the VoxCeleb2 trial list.
    n_vox2_trials_per_class : int
        Positive (and negative) trials of the VoxCeleb2 list: the
        authors' ``total_sample_size // 2``, rounded up by their rule to
        whole rounds over the speakers and speaker pairs (32,000 gives
        32,096 positives and 34,515 negatives over the 118 speakers).
    vox2_trials_rule : str
        How the VoxCeleb2 list is drawn: ``"authors"`` (their sampler's
        rule, see :func:`vox2_trials`) or ``"balanced"`` (the generator of
        :func:`data_prep.trials.balanced_trials`, used before).
    sample_rate : int
        The sample rate every file must have.
    num_workers : int, optional
        Processes scanning speaker folders (default: cores, at most 8).
    allow_missing_trials : bool
        Drop (and report) listed trials naming absent utterances instead of
        raising.
    progress : bool
        Show a progress bar while scanning.
    min_duration : float
        Files shorter than this (seconds) are reported and skipped. The
        default, 0.05 s, is two frames of a wav2vec2-style model (which
        needs 400 samples for one).
    skip_prep : bool
        Return the output paths without preparing anything.

    Returns
    -------
    dict
        Paths of ``train``, ``valid``, ``test``, ``valid_trials``,
        ``test_trials``, ``problems`` (+ ``test_vox1_e``,
        ``test_vox1_e_trials``... when prepared).

    Raises
    ------
    ValueError
        On an unknown setting or split source, a root without VoxCeleb
        audio, a trial list using training speakers, listed trials naming
        absent utterances (unless allowed), or a split left empty.

    Example
    -------
    >>> from data_prep.mini_corpus import write_mini_voxceleb
    >>> root = getfixture("tmp_path")
    >>> groups = {
    ...     "vox1-dev": ["id10001", "id10002"],
    ...     "vox1-test": ["id10270", "id10271"],
    ...     "vox2-test": ["id00017", "id00061"],
    ... }
    >>> corpus = write_mini_voxceleb(
    ...     root / "vox",
    ...     speakers=sum(groups.values(), []),
    ...     test_speakers=groups["vox1-test"],
    ...     videos_per_speaker=2,
    ...     utterances_per_video=2,
    ...     duration_range=(0.2, 0.3),
    ... )
    >>> lists = root / "lists" / "speakers"
    >>> lists.mkdir(parents=True)
    >>> for name, speakers in groups.items():
    ...     _ = (lists / f"speaker-{name}.csv").write_text(
    ...         "ID\\n" + "\\n".join(speakers) + "\\n"
    ...     )
    >>> paths = prepare_voxceleb(
    ...     corpus,
    ...     root / "prep",
    ...     paper_lists=root / "lists",
    ...     vox1_o_trials=f"{corpus}/veri_test2.txt",
    ...     num_workers=1,
    ...     n_vox2_trials_per_class=8,
    ...     progress=False,
    ... )
    >>> print(open(paths["train"]).readlines()[1].split(",")[0])
    id10001--...--00001
    """
    save_folder = pathlib.Path(save_folder).resolve()
    outputs = {split: save_folder / f"{split}.csv" for split in SPLITS}
    outputs["valid_trials"] = save_folder / "valid_trials.csv"
    outputs["test_trials"] = save_folder / "test_trials.csv"
    outputs["problems"] = save_folder / "prepare_problems.txt"
    if setting not in SETTINGS:
        raise ValueError(
            f"setting {setting!r}: use one of {', '.join(sorted(SETTINGS))}"
        )
    if vox2_trials_rule not in VOX2_TRIAL_RULES:
        raise ValueError(
            f"vox2_trials_rule {vox2_trials_rule!r}: use one of "
            f"{list(VOX2_TRIAL_RULES)}"
        )
    if split_source != "paper":
        raise ValueError(
            f"split_source {split_source!r}: VoxCeleb uses the published "
            "speaker lists ('paper'), which are the official dev/test "
            "speakers; pass vox1_o_trials to use another Vox1-O list"
        )
    roots = parse_data_folders(data_folders)
    # Vox1-E/H hold VoxCeleb1 dev speakers: extra test sets only for the
    # settings that train on VoxCeleb2.
    trains_on_vox2 = SETTINGS[setting]["train"] == "vox2-dev"
    eh_lists = _eh_lists(vox1_eh_trials, roots) if trains_on_vox2 else {}
    for name in eh_lists:
        outputs[f"test_{name}"] = save_folder / f"test_{name}.csv"
        outputs[f"test_{name}_trials"] = save_folder / f"test_{name}_trials.csv"
    if skip_prep:
        return outputs
    if vox1_o_trials is not None:
        vox1_o_trials = pathlib.Path(vox1_o_trials).resolve()
    options = {
        "data_folders": [str(root) for root in roots],
        "setting": setting,
        "split_source": split_source,
        "paper_lists": paper_lists_option(paper_lists or PAPER_LISTS_URL),
        "vox1_o_trials": vox1_o_trials,
        "vox1_eh_trials": {k: str(v) for k, v in sorted(eh_lists.items())},
        "seed": seed,
        "n_vox2_trials_per_class": n_vox2_trials_per_class,
        "vox2_trials_rule": vox2_trials_rule,
        "sample_rate": sample_rate,
        "allow_missing_trials": allow_missing_trials,
        "min_duration": min_duration,
    }
    lock = start_preparation(save_folder, "voxceleb", options, outputs.values())
    if lock is None:
        logger.info("VoxCeleb already prepared in %s, skipping", save_folder)
        return outputs
    with lock:
        save_folder.mkdir(parents=True, exist_ok=True)
        problems = ProblemReport()
        _prepare(
            roots,
            save_folder,
            outputs,
            setting,
            paper_lists or PAPER_LISTS_URL,
            vox1_o_trials,
            eh_lists,
            seed,
            (n_vox2_trials_per_class, vox2_trials_rule),
            (sample_rate, min_duration),
            num_workers,
            allow_missing_trials,
            progress,
            problems,
        )
        mark_prepared(save_folder, "voxceleb", options)
    return outputs


def _prepare(
    roots,
    save_folder,
    outputs,
    setting,
    paper_lists,
    vox1_o_trials,
    eh_lists,
    seed,
    vox2_rule,
    scan_rules,
    num_workers,
    allow_missing,
    progress,
    problems,
):
    """The work of :func:`prepare_voxceleb` once the options are checked
    (``vox2_rule``: ``n_vox2_trials_per_class`` and ``vox2_trials_rule``;
    ``scan_rules``: the ``sample_rate`` and ``min_duration`` of files)."""
    plan = SETTINGS[setting]
    lists = paper_lists_folder(
        paper_lists, save_folder, _list_names(setting, vox1_o_trials)
    )
    train_list = lists / "speakers" / f"speaker-{plan['train']}.csv"
    vox2_list = lists / "speakers" / f"speaker-{VOX2_TEST_SPEAKERS}.csv"
    train_listed = sorted(read_paper_speakers(train_list))
    # File order: the authors' sampler cycles through the list as written.
    vox2_listed = list(read_paper_speakers(vox2_list))
    vox1_o_path = vox1_o_trials or lists / PAPER_VOX1_O
    vox1_o = read_trial_list(vox1_o_path)
    vox1_o_speakers = {
        speaker_of(t[key]) for t in vox1_o for key in ("enrol", "test")
    }
    eh_speakers = {
        name: _text_trial_speakers(p) for name, p in eh_lists.items()
    }
    _check_disjoint(
        train_listed,
        {
            f"Vox1-O ({vox1_o_path.name})": vox1_o_speakers,
            f"VoxCeleb2 test ({vox2_list.name})": set(vox2_listed),
            **eh_speakers,
        },
        setting,
    )

    folders = find_speaker_folders(roots, problems)
    train_speakers = _report_missing(
        train_listed, folders, train_list, problems
    )
    vox2_speakers = _report_missing(vox2_listed, folders, vox2_list, problems)
    held_out = vox1_o_speakers.union(*eh_speakers.values())
    wanted = set(train_speakers) | set(vox2_speakers)
    wanted |= {s for s in held_out if s in folders}
    logger.info(
        "VoxCeleb %s: scanning %d speakers of %d found under %s",
        setting,
        len(wanted),
        len(folders),
        ", ".join(map(str, roots)),
    )
    cache = save_folder / "scan_cache"
    summary = scan_speakers(
        {s: folders[s] for s in wanted},
        cache,
        scan_rules[0],
        num_workers,
        progress,
        min_duration=scan_rules[1],
    )
    for line in summary.problems:
        where, _, message = line.partition(": ")
        problems.add(where, message)
    logger.info(
        "scanned %d files (%d speakers from the cache)",
        summary.n_files,
        summary.n_reused,
    )

    available = set()
    for ids in cached_ids(cache, sorted(vox1_o_speakers)).values():
        available.update(ids)
    trials = {
        "vox1_o": _with_video_match(
            trials_with_audio(
                vox1_o, available, vox1_o_path, allow_missing, problems
            )
        )
    }
    vox2_ids = cached_ids(cache, vox2_speakers)
    try:
        trials["vox2"] = vox2_trials(
            vox2_ids, vox2_rule[0], seed, rule=vox2_rule[1]
        )
    except ValueError as error:
        problems.write(outputs["problems"])
        raise ValueError(
            f"cannot draw the VoxCeleb2 test trials from the {len(vox2_ids)} "
            f"speakers of {vox2_list.name} found in data_folders: {error}. "
            "Add the converted VoxCeleb2 test set to data_folders."
        ) from error
    problems.write(outputs["problems"])

    n_train = write_manifest_from_cache(outputs["train"], cache, train_speakers)
    if not n_train:
        raise ValueError(
            f"no training audio: none of the {len(train_listed)} speakers of "
            f"{train_list.name} has files under {', '.join(map(str, roots))}"
            f"; see {outputs['problems']}"
        )
    for split in ("valid", "test"):
        split_trials = trials[plan[split]]
        if not split_trials:
            raise ValueError(
                f"the {split} trials ({plan[split]}) are empty; see "
                f"{outputs['problems']}"
            )
        used = {t[key] for t in split_trials for key in ("enrol", "test")}
        write_manifest_from_cache(
            outputs[split], cache, sorted({speaker_of(u) for u in used}), used
        )
        write_trials_csv(outputs[f"{split}_trials"], split_trials)
    for name, path in eh_lists.items():
        speakers = sorted(eh_speakers[name])
        available = set()
        for ids in cached_ids(cache, speakers).values():
            available.update(ids)
        used = _stream_text_trials(
            path,
            outputs[f"test_{name}_trials"],
            available,
            allow_missing,
            problems,
        )
        write_manifest_from_cache(
            outputs[f"test_{name}"], cache, speakers, used
        )
    problems.write(outputs["problems"])
    logger.info("VoxCeleb %s prepared in %s", setting, save_folder)


# ------------------------------------------------------- m4a -> wav (Vox2)
def m4a_target(source, root, out_root):
    """Where :func:`convert_m4a` writes the wav of one m4a file.

    The last three parts of the path (speaker, video, file) are kept under
    ``<out_root>/wav/``, the layout :func:`prepare_voxceleb` reads, whatever
    the folders above them (``dev/aac/``, ``aac/``...).

    Arguments
    ---------
    source : str or path
        An m4a file under ``root``.
    root : str or path
        The folder being converted.
    out_root : str or path
        The output root.

    Returns
    -------
    pathlib.Path
        The wav file to write.

    Example
    -------
    >>> m4a_target("/v2/dev/aac/id00012/21Uxsk56VDQ/00001.m4a", "/v2", "/o")
    PosixPath('/o/wav/id00012/21Uxsk56VDQ/00001.wav')
    """
    parts = pathlib.Path(source).relative_to(root).parts[-3:]
    return pathlib.Path(out_root, "wav", *parts).with_suffix(".wav")


def _iter_m4a(root):
    """The m4a files under ``root``, in sorted order, streamed."""
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in sorted(files):
            if name.lower().endswith(".m4a") and not name.startswith("."):
                yield os.path.join(folder, name)


def _is_complete_wav(path, sample_rate):
    """Whether ``path`` is a whole mono wav at ``sample_rate``."""
    try:
        info = read_wav_header(path)
    except ValueError:
        return False
    return info.sample_rate == sample_rate and info.channels == 1


def _convert_one(source, target, ffmpeg, sample_rate):
    """Converts one file: ``(status, source, message)``."""
    if _is_complete_wav(target, sample_rate):
        return "skipped", source, ""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    command = [
        ffmpeg,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(source),
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(sample_rate),
        "-c:a",
        "pcm_s16le",
        "-f",
        "wav",
        str(partial),
    ]
    preexec = child_dies_with_parent()
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        preexec_fn=preexec,
    )
    if run.returncode != 0 or not _is_complete_wav(partial, sample_rate):
        partial.unlink(missing_ok=True)
        error = (run.stderr or "").strip().splitlines()[-1:] or ["bad output"]
        return "failed", source, f"ffmpeg exit {run.returncode}: {error[0]}"
    os.replace(partial, target)
    return "converted", source, ""


def convert_m4a(
    root,
    out_root,
    num_workers=None,
    sample_rate=16000,
    ffmpeg="ffmpeg",
    progress=True,
):
    """Converts VoxCeleb2's m4a files to 16 kHz mono wav with ffmpeg.

    Every ``*.m4a`` under ``root`` becomes ``<out_root>/wav/<speaker>/
    <video>/<file>.wav`` (:func:`m4a_target`). ffmpeg writes to a hidden
    temporary name that is renamed once the output is checked, so a killed
    run never leaves a partial wav; a re-run skips the outputs that are
    complete (a whole mono wav at ``sample_rate``) and converts the rest.
    Conversions run in parallel (ffmpeg processes). Files ffmpeg cannot
    convert are listed in ``<out_root>/convert_m4a_failures.txt``.

    Arguments
    ---------
    root : str or path
        The VoxCeleb2 folder (e.g. holding ``dev/aac/`` or ``aac/``).
    out_root : str or path
        The wav root to write (then a ``data_folders`` entry).
    num_workers : int, optional
        Parallel ffmpeg processes (default: cores, at most 8).
    sample_rate : int
        Output sample rate.
    ffmpeg : str
        The ffmpeg executable (a name on PATH or a path).
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        Counts ``converted``, ``skipped`` and ``failed``, and
        ``failures_file``.

    Raises
    ------
    RuntimeError
        When ffmpeg is not found.
    ValueError
        When ``root`` is not a folder.

    Example
    -------
    >>> tmp = getfixture("tmp_path")
    >>> try:
    ...     convert_m4a(tmp / "m4a", tmp / "wav", ffmpeg="no-such-ffmpeg")
    ... except RuntimeError as error:
    ...     print(str(error)[:40])
    ffmpeg not found ('no-such-ffmpeg'): Vox
    """
    from tqdm import tqdm

    executable = shutil.which(str(ffmpeg))
    if executable is None:
        raise RuntimeError(
            f"ffmpeg not found ({str(ffmpeg)!r}): VoxCeleb2's m4a audio "
            "needs ffmpeg to become wav. Install it (e.g. `apt-get install "
            "ffmpeg` or `conda install -c conda-forge ffmpeg`) or pass "
            "its path (--ffmpeg /path/to/ffmpeg)."
        )
    root, out_root = pathlib.Path(root), pathlib.Path(out_root)
    if not root.is_dir():
        raise ValueError(f"m4a folder {str(root)!r} is not a folder")
    num_workers = num_workers or default_num_workers()
    total = sum(1 for _ in _iter_m4a(root)) if progress else None
    counts = {"converted": 0, "skipped": 0, "failed": 0}
    failures = []

    def _collect(futures):
        for future in futures:
            status, source, message = future.result()
            counts[status] += 1
            if status == "failed":
                failures.append(f"{source}: {message}\n")
            bar.update(1)

    bar = tqdm(total=total, unit="file", desc="m4a->wav", disable=not progress)
    with bar, ThreadPoolExecutor(num_workers) as pool:
        pending = set()
        for source in _iter_m4a(root):
            target = m4a_target(source, root, out_root)
            pending.add(
                pool.submit(
                    _convert_one, source, target, executable, sample_rate
                )
            )
            if len(pending) >= 4 * num_workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                _collect(done)
        _collect(wait(pending).done)
    failures_file = out_root / "convert_m4a_failures.txt"
    out_root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(failures_file, "".join(sorted(failures)))
    logger.info(
        "m4a -> wav: %(converted)d converted, %(skipped)d already done, "
        "%(failed)d failed",
        counts,
    )
    return {**counts, "failures_file": failures_file}


# ------------------------------------------------------------ command line
def main(argv=None):
    """Command line: ``convert-m4a SRC DST`` and ``prepare``.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0, or 1 when some files could not be converted.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert-m4a", help="VoxCeleb2 m4a -> 16 kHz wav (ffmpeg)"
    )
    convert.add_argument("source", help="folder holding the m4a files")
    convert.add_argument("target", help="output root (wav/ is made in it)")
    convert.add_argument("--workers", type=int, default=None)
    convert.add_argument("--ffmpeg", default="ffmpeg")
    convert.add_argument("--no-progress", action="store_true")
    prepare = commands.add_parser("prepare", help="manifests and trials")
    prepare.add_argument("--data_folders", required=True)
    prepare.add_argument("--save_folder", required=True)
    prepare.add_argument("--setting", choices=sorted(SETTINGS), default="vox1")
    prepare.add_argument("--paper_lists", default=None)
    prepare.add_argument("--vox1_o_trials", default=None)
    prepare.add_argument("--seed", type=int, default=1234)
    prepare.add_argument(
        "--vox2_trials_rule", choices=VOX2_TRIAL_RULES, default="authors"
    )
    prepare.add_argument("--workers", type=int, default=None)
    prepare.add_argument("--allow_missing_trials", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "convert-m4a":
        counts = convert_m4a(
            args.source,
            args.target,
            num_workers=args.workers,
            ffmpeg=args.ffmpeg,
            progress=not args.no_progress,
        )
        print(
            f"{counts['converted']} converted, {counts['skipped']} already "
            f"done, {counts['failed']} failed"
            + (
                f" (listed in {counts['failures_file']})"
                if counts["failed"]
                else ""
            )
        )
        return int(counts["failed"] > 0)
    paths = prepare_voxceleb(
        args.data_folders,
        args.save_folder,
        setting=args.setting,
        paper_lists=args.paper_lists,
        vox1_o_trials=args.vox1_o_trials,
        seed=args.seed,
        vox2_trials_rule=args.vox2_trials_rule,
        num_workers=args.workers,
        allow_missing_trials=args.allow_missing_trials,
    )
    for name, path in sorted(paths.items()):
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
