"""Reading trial lists: our CSV, the VoxCeleb text form, the authors' lists.

A trial is a dict ``{"enrol": id, "test": id, "label": 0 or 1, ...}`` whose
other keys are meta-match columns (``gender_match``, ``accent_match``...).
Three file forms are read: our CSV (``enrol,test,label`` + match columns),
the VoxCeleb text form (``label enrol.wav test.wav``) and the UniPool
authors' ``trials-*.csv`` (``LABEL,SAMPLE1,SAMPLE2`` + upper-case match
columns, paths like ``p329/p329_050.wav``). :func:`read_trials` tells the
form from the first line and refuses repeated or contradictory trials.

Writing and generating trial lists is data preparation
(:mod:`data_prep.trials`, which re-imports these readers).

Authors
 * unipool-sv developers 2026
"""

import pathlib

from unipool_lobes.dataio.manifest import read_csv

TRIAL_COLUMNS = ("enrol", "test", "label")


def _number(text):
    """``"1"`` -> 1, ``"0.5"`` -> 0.5, anything else stays a string."""
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return text


def _label(text, where):
    """Parses a 0/1 label, raising a ValueError naming ``where``."""
    label = _number(str(text).strip())
    if label not in (0, 1):
        raise ValueError(f"{where}: label {text!r} is not 0 or 1")
    return int(label)


# ------------------------------------------------------------------ our CSV
def read_trials_csv(path):
    """Reads a trial CSV (``enrol,test,label`` + match columns).

    Arguments
    ---------
    path : str or path
        The CSV file.

    Returns
    -------
    list of dict
        Trials; ``label`` and numeric match columns as numbers.

    Raises
    ------
    ValueError
        When a column of ``enrol,test,label`` is missing or a label is not
        0/1 (the message names the file and line).

    Example
    -------
    >>> path = getfixture("tmp_path") / "trials.csv"
    >>> _ = path.write_text("enrol,test,label\\na,b,0\\n")
    >>> read_trials_csv(path)
    [{'enrol': 'a', 'test': 'b', 'label': 0}]
    """
    rows = read_csv(path)
    if rows and not set(TRIAL_COLUMNS) <= set(rows[0]):
        raise ValueError(
            f"{path}: header {list(rows[0])} lacks one of {TRIAL_COLUMNS}"
        )
    trials = []
    for line, row in enumerate(rows, start=2):
        trial = {key: _number(value) for key, value in row.items()}
        trial["enrol"], trial["test"] = row["enrol"], row["test"]
        trial["label"] = _label(row["label"], f"{path}:{line}")
        trials.append(trial)
    return trials


# --------------------------------------------------------- VoxCeleb text form
def voxceleb_path_to_id(path):
    """Utterance ID of a VoxCeleb-style path, as SpeechBrain names them.

    The last three path parts (speaker, video, file) joined by ``--``;
    shorter paths keep the parts they have.

    Arguments
    ---------
    path : str
        E.g. ``id10270/x6uYqmx31kE/00001.wav``.

    Returns
    -------
    str
        E.g. ``id10270--x6uYqmx31kE--00001``.

    Example
    -------
    >>> voxceleb_path_to_id("vox1_test_wav/id10270/x6uYqmx31kE/00001.wav")
    'id10270--x6uYqmx31kE--00001'
    >>> voxceleb_path_to_id("p329_050.wav")
    'p329_050'
    """
    parts = pathlib.PurePosixPath(path.replace("\\", "/")).with_suffix("")
    return "--".join(parts.parts[-3:])


def voxceleb_id_to_path(utterance_id):
    """Inverse of :func:`voxceleb_path_to_id`: ``--`` -> ``/``, add ``.wav``.

    Arguments
    ---------
    utterance_id : str
        E.g. ``id10270--x6uYqmx31kE--00001``.

    Returns
    -------
    str
        E.g. ``id10270/x6uYqmx31kE/00001.wav``.

    Example
    -------
    >>> voxceleb_id_to_path("id10270--x6uYqmx31kE--00001")
    'id10270/x6uYqmx31kE/00001.wav'
    """
    return utterance_id.replace("--", "/") + ".wav"


def read_voxceleb_trials(path, path_to_id=voxceleb_path_to_id):
    """Reads the VoxCeleb text form ``label enrol.wav test.wav``.

    Arguments
    ---------
    path : str or path
        The text file.
    path_to_id : callable
        Maps a path of the file to an utterance ID.

    Returns
    -------
    list of dict
        Trials with ``enrol``, ``test`` and ``label``.

    Raises
    ------
    ValueError
        On a line without three fields or with a label other than 0/1
        (the message names the file and line).

    Example
    -------
    >>> path = getfixture("tmp_path") / "veri.txt"
    >>> _ = path.write_text("1 id1/v/00001.wav id1/w/00003.wav\\n")
    >>> read_voxceleb_trials(path)
    [{'enrol': 'id1--v--00001', 'test': 'id1--w--00003', 'label': 1}]
    """
    trials = []
    with open(path, encoding="utf-8-sig") as source:
        for number, line in enumerate(source, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{number}"
            if len(fields) != 3:
                raise ValueError(
                    f"{where}: expected 'label enrol test', got {line!r}"
                )
            trials.append(
                {
                    "enrol": path_to_id(fields[1]),
                    "test": path_to_id(fields[2]),
                    "label": _label(fields[0], where),
                }
            )
    return trials


# ---------------------------------------------------------- the paper's lists
def basename_id(path):
    """Utterance ID of a path whose file name is unique (VCTK, LibriSpeech).

    Arguments
    ---------
    path : str
        E.g. ``p329/p329_050.wav``.

    Returns
    -------
    str
        The file name without extension, e.g. ``p329_050``.

    Example
    -------
    >>> basename_id("p329/p329_050.wav")
    'p329_050'
    """
    return pathlib.PurePosixPath(path.replace("\\", "/")).stem


def read_paper_trials(path, path_to_id=basename_id):
    """Reads the authors' ``trials-*.csv`` (``LABEL``, ``SAMPLE1``, ``SAMPLE2``
    and the match columns).

    Match columns keep their names in lower case (``GENDER_MATCH`` ->
    ``gender_match``); the original paths are kept as ``enrol_path`` and
    ``test_path``.

    Arguments
    ---------
    path : str or path
        The published trial list.
    path_to_id : callable
        Maps a ``SAMPLE`` path to our utterance ID (default: file name
        without extension, right for VCTK and LibriSpeech; use
        :func:`voxceleb_path_to_id` for VoxCeleb).

    Returns
    -------
    list of dict
        Trials with ``enrol``, ``test``, ``label`` and the match columns.

    Raises
    ------
    ValueError
        When ``LABEL``, ``SAMPLE1`` or ``SAMPLE2`` is missing, or a label
        is not 0/1 (the message names the file and line).

    Example
    -------
    >>> path = getfixture("tmp_path") / "trials-test.csv"
    >>> _ = path.write_text(
    ...     "LABEL,SAMPLE1,SAMPLE2,GENDER_MATCH\\n"
    ...     "0,p329/p329_050.wav,p272/p272_203.wav,0\\n"
    ... )
    >>> trial = read_paper_trials(path)[0]
    >>> trial["enrol"], trial["test"], trial["label"], trial["gender_match"]
    ('p329_050', 'p272_203', 0, 0)
    """
    rows = read_csv(path)
    needed = {"LABEL", "SAMPLE1", "SAMPLE2"}
    if rows and not needed <= set(rows[0]):
        raise ValueError(
            f"{path}: header {list(rows[0])} lacks one of {sorted(needed)}"
        )
    trials = []
    for line, row in enumerate(rows, start=2):
        trial = {
            "enrol": path_to_id(row["SAMPLE1"]),
            "test": path_to_id(row["SAMPLE2"]),
            "label": _label(row["LABEL"], f"{path}:{line}"),
        }
        for key, value in row.items():
            if key not in needed:
                trial[key.lower()] = _number(value)
        trial["enrol_path"], trial["test_path"] = row["SAMPLE1"], row["SAMPLE2"]
        trials.append(trial)
    return trials


# ------------------------------------------------------------ any of them
def read_trials(path):
    """Reads a trial list in any of the three forms, as columns.

    The form is told from the first line: a CSV header with ``enrol,test,
    label`` (ours) or ``LABEL,SAMPLE1,SAMPLE2`` (the paper's, IDs from file
    names), otherwise the VoxCeleb text form ``label enrol.wav test.wav``.

    Arguments
    ---------
    path : str or path
        The trial list.

    Returns
    -------
    dict
        ``{"enrol": [...], "test": [...], "label": [...], ...}``: one list
        per column, in file order.

    Raises
    ------
    ValueError
        On a CSV header of neither form, or a bad line (see the readers).

    Example
    -------
    >>> path = getfixture("tmp_path") / "veri.txt"
    >>> _ = path.write_text("1 id1/v/00001.wav id1/w/00003.wav\\n")
    >>> read_trials(path)["test"]
    ['id1--w--00003']
    """
    with open(path, encoding="utf-8-sig") as source:
        first = source.readline().strip()
    header = set(first.split(","))
    if "," not in first:
        trials = read_voxceleb_trials(path)
    elif set(TRIAL_COLUMNS) <= header:
        trials = read_trials_csv(path)
    elif {"LABEL", "SAMPLE1", "SAMPLE2"} <= header:
        trials = read_paper_trials(path)
    else:
        raise ValueError(
            f"{path}: header {first!r} is neither 'enrol,test,label' nor "
            "'LABEL,SAMPLE1,SAMPLE2'"
        )
    check_trial_pairs(trials, path)
    columns = {key: [] for key in TRIAL_COLUMNS}
    for trial in trials:
        for key, value in trial.items():
            columns.setdefault(key, []).append(value)
    return columns


def read_trials_of(path, known_ids, name):
    """Reads a trial list whose utterances must all be in a manifest.

    Arguments
    ---------
    path : str or path
        The trial list (any form :func:`read_trials` reads).
    known_ids : set
        Utterance IDs of the manifest that will be embedded.
    name : str
        Which list this is (``"valid"``, ``"test"``), for the message.

    Returns
    -------
    dict
        As :func:`read_trials`.

    Raises
    ------
    ValueError
        Naming the list, how many of its utterances the manifest lacks and
        a few of them.

    Example
    -------
    >>> path = getfixture("tmp_path") / "veri.txt"
    >>> _ = path.write_text("1 id1/v/00001.wav id1/w/00003.wav\\n")
    >>> known = {"id1--v--00001", "id1--w--00003"}
    >>> read_trials_of(path, known, "test")["label"]
    [1]
    >>> read_trials_of(path, {"id1--v--00001"}, "test")
    Traceback (most recent call last):
      ...
    ValueError: 1 utterances of the test trials ... e.g. ['id1--w--00003']
    """
    trials = read_trials(path)
    unknown = sorted(
        {u for u in trials["enrol"] + trials["test"] if u not in known_ids}
    )
    if unknown:
        raise ValueError(
            f"{len(unknown)} utterances of the {name} trials {path} are not in "
            f"its manifest, e.g. {unknown[:5]}"
        )
    return trials


def check_trial_pairs(trials, where):
    """Refuses a trial list that repeats a trial or contradicts itself.

    The same ``(enrol, test)`` pair twice would count twice in the EER;
    a pair and its reverse with different labels cannot both be right.
    A pair and its reverse with the same label are allowed (the official
    VoxCeleb1-O list holds 338 such pairs).

    Arguments
    ---------
    trials : list of dict
        Trials with ``enrol``, ``test`` and ``label``, in file order.
    where : str or path
        The trial list, named in the message.

    Raises
    ------
    ValueError
        Naming the two trials (1-based, in file order).

    Example
    -------
    >>> trials = [
    ...     {"enrol": "a", "test": "b", "label": 1},
    ...     {"enrol": "b", "test": "a", "label": 0},
    ... ]
    >>> try:
    ...     check_trial_pairs(trials, "t.csv")
    ... except ValueError as error:
    ...     print(error)  # doctest: +NORMALIZE_WHITESPACE
    t.csv: trials 1 and 2 pair a with b but one says target (1),
    the other non-target (0)
    """
    first_of = {}
    for number, trial in enumerate(trials, start=1):
        pair = (trial["enrol"], trial["test"])
        if pair in first_of:
            raise ValueError(
                f"{where}: trials {first_of[pair]} and {number} are the same "
                f"trial ({pair[0]} {pair[1]}); remove the repeat"
            )
        first_of[pair] = number
        reverse = first_of.get(pair[::-1])
        if (
            reverse is not None
            and trials[reverse - 1]["label"] != trial["label"]
        ):
            raise ValueError(
                f"{where}: trials {reverse} and {number} pair {pair[1]} with "
                f"{pair[0]} but one says "
                f"{_label_name(trials[reverse - 1]['label'])}, the other "
                f"{_label_name(trial['label'])}"
            )


def _label_name(label):
    """``1`` -> ``"target (1)"``, anything else -> ``"non-target (0)"``."""
    return "target (1)" if label == 1 else "non-target (0)"
