"""The lists ``unipool-sv`` reads: audio file lists, manifests, trial lists.

``embed`` reads a file list (``path`` or ``id<TAB>path`` per line); ``score``
reads the utterances of a manifest CSV or of a trial list's paths under an
audio root, and checks every trial names a known utterance.

Authors
 * unipool-sv developers 2026
"""

import os
import pathlib

from unipool_lobes.dataio.manifest import read_csv, read_manifest
from unipool_lobes.scoring.trials import (
    basename_id,
    read_trials,
    voxceleb_id_to_path,
    voxceleb_path_to_id,
)

__all__ = [
    "TrialError",
    "audio_root_utterances",
    "check_trial_utterances",
    "manifest_utterances",
    "read_file_list",
]


class TrialError(ValueError):
    """A trial list that does not fit the utterances available."""


def read_file_list(path):
    """Reads a list of audio files: ``path`` or ``id<TAB>path`` per line.

    A line is a path (spaces allowed), or an id and a path separated by a
    tab. Blank lines and lines starting with ``#`` are skipped; a UTF-8
    byte-order mark is accepted. Without an id, the file name without
    extension is the id. Relative paths are relative to the list's folder.

    Arguments
    ---------
    path : str or os.PathLike
        The list file.

    Returns
    -------
    ids : list of str
        One id per file.
    paths : list of str
        The audio files.

    Raises
    ------
    FileNotFoundError
        If the list is missing.
    ValueError
        On a line with more than one tab, an ``id path`` line separated by
        a space instead of a tab, or a repeated id (the message names the
        file and line).

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "list.txt").write_text(
    ...     "a/x y.wav\\nspk1-y\\t/d/y.flac\\n"
    ... )
    >>> ids, paths = read_file_list(folder / "list.txt")
    >>> ids, paths[0].endswith("a/x y.wav"), paths[1]
    (['x y', 'spk1-y'], True, '/d/y.flac')
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file list not found: {path}")
    ids, paths, line_of = [], [], {}
    text = path.read_text(encoding="utf-8-sig")
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        fields = [field.strip() for field in entry.split("\t")]
        if len(fields) > 2:
            raise ValueError(
                f"{path}:{number}: expected 'path' or 'id<TAB>path', got "
                f"{len(fields)} tab-separated fields"
            )
        audio = str(path.parent / fields[-1])
        if len(fields) == 1 and not os.path.exists(audio):
            words = entry.split(maxsplit=1)
            if len(words) == 2 and os.path.exists(path.parent / words[1]):
                raise ValueError(
                    f"{path}:{number}: {entry!r} is not a file; to give an "
                    "id, separate it from the path with a tab (paths may "
                    "hold spaces)"
                )
        utterance_id = fields[0] if len(fields) == 2 else _stem(fields[-1])
        if utterance_id in line_of:
            raise ValueError(
                f"{path}:{number}: id {utterance_id!r} already on line "
                f"{line_of[utterance_id]}; give unique ids ('id<TAB>path' "
                "lines)"
            )
        line_of[utterance_id] = number
        ids.append(utterance_id)
        paths.append(audio)
    if not ids:
        raise ValueError(f"{path} lists no audio file")
    return ids, paths


def manifest_utterances(manifest, data_root=None):
    """Reads the utterances of a SpeechBrain manifest CSV.

    Arguments
    ---------
    manifest : str or os.PathLike
        CSV with ``ID`` and ``wav`` columns, optionally ``start``/``stop``
        in samples; ``$data_root`` in ``wav`` is replaced by ``data_root``.
    data_root : str, optional
        The value of ``$data_root``.

    Returns
    -------
    dict
        ``id -> (path, (start, stop) or None)``, in manifest order.

    Raises
    ------
    FileNotFoundError
        If the manifest is missing.
    ValueError
        On missing columns, a repeated ID or an unset ``$data_root``.

    Example
    -------
    >>> path = getfixture("tmp_path") / "test.csv"
    >>> _ = path.write_text("ID,wav,start,stop\\nu1,$data_root/u1.wav,0,800\\n")
    >>> manifest_utterances(path, data_root="/corpus")
    {'u1': ('/corpus/u1.wav', (0, 800))}
    """
    manifest = pathlib.Path(manifest)
    replacements = {} if data_root is None else {"data_root": data_root}
    rows = read_manifest(manifest, replacements)
    table = {}
    for number, (utterance, row) in enumerate(rows.items(), start=2):
        where = f"{manifest}:{number}"
        if "wav" not in row:
            raise ValueError(f"{manifest}: needs 'ID' and 'wav' columns")
        wav = row["wav"]
        if data_root is None and "$data_root" in wav:
            raise ValueError(f"{where}: '$data_root' needs --data-root")
        segment = None
        if row.get("start") not in (None, "") and row.get("stop"):
            segment = (int(float(row["start"])), int(float(row["stop"])))
        table[utterance] = (wav, segment)
    return table


def audio_root_utterances(trials_path, audio_root):
    """Maps the utterance ids of a trial list to files under a root folder.

    VoxCeleb text lists (``label a.wav b.wav``) and the UniPool authors'
    lists (``LABEL,SAMPLE1,SAMPLE2``) name paths: they are taken relative
    to ``audio_root``. Our CSV lists name ids: ``a--b--c`` is looked up as
    ``audio_root/a/b/c.wav``.

    Arguments
    ---------
    trials_path : str or os.PathLike
        The trial list.
    audio_root : str or os.PathLike
        The folder the trial paths are relative to.

    Returns
    -------
    dict
        ``id -> (path, None)`` with the ids ``read_trials`` gives.

    Example
    -------
    >>> path = getfixture("tmp_path") / "veri.txt"
    >>> _ = path.write_text("1 id1/v/00001.wav id1/w/00003.wav\\n")
    >>> audio_root_utterances(path, "/vox1")["id1--w--00003"]
    ('/vox1/id1/w/00003.wav', None)
    """
    root = pathlib.Path(audio_root)
    with open(trials_path, encoding="utf-8-sig") as source:
        lines = source.read().splitlines()
    first = lines[0].strip() if lines else ""
    header = set(first.split(","))
    table = {}
    if "," not in first:
        for line in lines:
            for relative in line.split()[1:3]:
                table[voxceleb_path_to_id(relative)] = (
                    str(root / relative),
                    None,
                )
    elif {"LABEL", "SAMPLE1", "SAMPLE2"} <= header:
        # The package's read_csv: SpeechBrain's load_data_csv needs an ID
        # column, and the authors' trial lists have none.
        for row in read_csv(trials_path):
            for relative in (row["SAMPLE1"], row["SAMPLE2"]):
                table[basename_id(relative)] = (str(root / relative), None)
    else:
        trials = read_trials(trials_path)
        for utterance_id in trials["enrol"] + trials["test"]:
            relative = voxceleb_id_to_path(utterance_id)
            table[utterance_id] = (str(root / relative), None)
    return table


def check_trial_utterances(trials, utterances, trials_path, where):
    """Raises TrialError for the first trial naming an unknown utterance.

    Arguments
    ---------
    trials : dict
        ``enrol``, ``test`` and ``label`` lists (``read_trials``).
    utterances : dict
        The known utterance ids.
    trials_path : str
        The trial list, for the message.
    where : str
        Where the utterances come from, for the message.

    Raises
    ------
    TrialError
        Naming the trial list, the trial number and the utterance.

    Example
    -------
    >>> trials = {"enrol": ["a", "a"], "test": ["b", "z"], "label": [1, 0]}
    >>> try:
    ...     check_trial_utterances(trials, {"a": 0, "b": 0}, "t.csv", "m.csv")
    ... except TrialError as error:
    ...     print(error)
    t.csv: trial 2 (a z) names utterance 'z', which is not in m.csv
    """
    for number, pair in enumerate(
        zip(trials["enrol"], trials["test"], strict=True), start=1
    ):
        for utterance_id in pair:
            if utterance_id not in utterances:
                raise TrialError(
                    f"{trials_path}: trial {number} ({pair[0]} {pair[1]}) "
                    f"names utterance {utterance_id!r}, which is not in "
                    f"{where}"
                )


def _stem(path):
    """File name without its extension."""
    return pathlib.PurePath(path).stem
