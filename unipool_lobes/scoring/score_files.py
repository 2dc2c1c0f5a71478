"""Score files: ``enrol test label score`` per line, written atomically.

Authors
 * unipool-sv developers 2026
"""

import os
import pathlib
import tempfile

import numpy as np
import torch

from unipool_lobes.scoring.error_rates import _as_labels


def write_scores(path, enrol_ids, test_ids, labels, scores):
    """Writes a score file atomically, ``enrol test label score`` per line.

    The file is written to a temporary file in the same folder and moved
    into place with ``os.replace``, so a reader never sees half a file.
    Scores are written with ``repr(float)`` and read back exactly.

    Arguments
    ---------
    path : str or os.PathLike
        The file to write (its folder is created if missing).
    enrol_ids : list of str
        The enrolment id of each trial.
    test_ids : list of str
        The test id of each trial.
    labels : list, numpy.ndarray or torch.Tensor
        1 for a target trial, 0 for a non-target one.
    scores : list, numpy.ndarray or torch.Tensor
        The score of each trial.

    Raises
    ------
    ValueError
        If the lengths differ, a label is not 0/1 or an id has whitespace.

    Example
    -------
    >>> path = str(getfixture("tmp_path") / "scores.txt")
    >>> write_scores(path, ["a", "b"], ["c", "d"], [1, 0], [0.5, -0.25])
    >>> print(open(path).read(), end="")
    a c 1 0.5
    b d 0 -0.25
    """
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    scores = np.asarray(scores).reshape(-1)
    n_trials = scores.size
    if len(enrol_ids) != n_trials or len(test_ids) != n_trials:
        raise ValueError(
            f"{len(enrol_ids)} enrol ids, {len(test_ids)} test ids and "
            f"{n_trials} scores: they must match"
        )
    labels = _as_labels(labels, n_trials)
    lines = []
    for enrol, test, label, score in zip(
        enrol_ids, test_ids, labels.tolist(), scores.tolist(), strict=True
    ):
        for utterance_id in (enrol, test):
            if not utterance_id or len(str(utterance_id).split()) != 1:
                raise ValueError(
                    f"id {utterance_id!r} is empty or has whitespace; "
                    "score files are whitespace-separated"
                )
        lines.append(f"{enrol} {test} {label} {float(score)!r}\n")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        "w",
        dir=path.parent,
        prefix=f".{path.name}.",
        suffix=".tmp",
        delete=False,
    )
    try:
        with handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        pathlib.Path(handle.name).unlink(missing_ok=True)
        raise


def read_scores(path):
    """Reads a score file written by ``write_scores``.

    Arguments
    ---------
    path : str or os.PathLike
        A file of ``enrol test label score`` lines (blank lines skipped).

    Returns
    -------
    enrol_ids : list of str
        The enrolment id of each trial.
    test_ids : list of str
        The test id of each trial.
    labels : numpy.ndarray
        The int64 0/1 labels.
    scores : numpy.ndarray
        The float64 scores.

    Raises
    ------
    ValueError
        Naming the file and line of a malformed line.

    Example
    -------
    >>> path = str(getfixture("tmp_path") / "scores.txt")
    >>> write_scores(path, ["a", "b"], ["c", "d"], [1, 0], [0.5, -0.25])
    >>> enrol, test, labels, scores = read_scores(path)
    >>> enrol, test, labels.tolist(), scores.tolist()
    (['a', 'b'], ['c', 'd'], [1, 0], [0.5, -0.25])
    """
    enrol_ids, test_ids, labels, scores = [], [], [], []
    with open(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{line_number}"
            if len(fields) != 4:
                raise ValueError(
                    f"{where}: expected 'enrol test label score', "
                    f"got {len(fields)} fields"
                )
            enrol, test, label, score = fields
            if label not in ("0", "1"):
                raise ValueError(f"{where}: label {label!r} is not 0 or 1")
            try:
                score = float(score)
            except ValueError:
                raise ValueError(
                    f"{where}: score {score!r} is not a number"
                ) from None
            enrol_ids.append(enrol)
            test_ids.append(test)
            labels.append(int(label))
            scores.append(score)
    return (
        enrol_ids,
        test_ids,
        np.asarray(labels, dtype=np.int64),
        np.asarray(scores, dtype=np.float64),
    )
