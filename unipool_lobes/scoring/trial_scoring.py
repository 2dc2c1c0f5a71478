"""Cosine trial scoring over an embedding table.

``stack_embeddings`` turns ``id -> embedding`` into a table,
``trial_rows`` checks a trial list against its row names,
``cosine_score_trials`` scores trials by the cosine of their two
embeddings and ``window_pair_score_trials`` by the mean cosine over all
pairs of their window embeddings (the UniPool authors' SincNet score).

Authors
 * unipool-sv developers 2026
"""

import torch
import torch.nn.functional as F


def stack_embeddings(embeddings_by_id):
    """Stacks a dict ``id -> embedding`` into ``(ids, [N, E] tensor)``.

    Each embedding may have any shape holding E values (SpeechBrain's
    ``[1, 1, E]`` included); it is flattened.

    Arguments
    ---------
    embeddings_by_id : dict
        Maps an utterance id to its embedding (tensor or array).

    Returns
    -------
    ids : list of str
        The ids, in the dict's order.
    embeddings : torch.Tensor
        The [N, E] stacked embeddings.

    Raises
    ------
    ValueError
        If the dict is empty or the embeddings differ in size.

    Example
    -------
    >>> ids, table = stack_embeddings(
    ...     {"a": torch.ones(1, 1, 3), "b": torch.zeros(3)}
    ... )
    >>> ids, table.shape
    (['a', 'b'], torch.Size([2, 3]))
    """
    if not embeddings_by_id:
        raise ValueError("stack_embeddings got an empty dict")
    ids = list(embeddings_by_id)
    rows = [torch.as_tensor(embeddings_by_id[i]).reshape(-1) for i in ids]
    size = rows[0].numel()
    for utterance_id, row in zip(ids, rows, strict=True):
        if row.numel() != size:
            raise ValueError(
                f"embedding of {utterance_id!r} has {row.numel()} values, "
                f"{ids[0]!r} has {size}"
            )
    return ids, torch.stack(rows)


def cosine_score_trials(embeddings, ids, enrol_ids, test_ids, chunk_size=65536):
    """Scores trials by the cosine similarity of their two embeddings.

    Rows are L2-normalised once, gathered by index and multiplied in chunks
    of ``chunk_size`` trials, so memory stays O(N E + chunk_size E). Plain
    cosine, no clamping; an all-zero embedding scores 0.

    Arguments
    ---------
    embeddings : torch.Tensor
        The [N, E] embedding table.
    ids : list of str
        The N ids naming the rows of ``embeddings``.
    enrol_ids : list of str
        The enrolment id of each trial.
    test_ids : list of str
        The test id of each trial.
    chunk_size : int
        Trials scored at once.

    Returns
    -------
    scores : torch.Tensor
        The [n_trials] cosine scores, in the embeddings' dtype.

    Raises
    ------
    KeyError
        If trials name ids not in ``ids`` (some are listed).
    ValueError
        On shape mismatches or duplicate ids.

    Example
    -------
    >>> table = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    >>> scores = cosine_score_trials(
    ...     table, ["a", "b", "c"], ["a", "a", "c"], ["b", "c", "c"]
    ... )
    >>> [round(s, 4) for s in scores.tolist()]
    [0.0, 0.7071, 1.0]
    """
    embeddings = torch.as_tensor(embeddings)
    if embeddings.dim() != 2:
        raise ValueError(
            f"embeddings must be [N, E], got shape {tuple(embeddings.shape)}"
        )
    enrol_rows, test_rows = _trial_indices(
        ids, embeddings.shape[0], enrol_ids, test_ids
    )
    unit = F.normalize(embeddings, dim=1)
    scores = torch.empty(len(enrol_ids), dtype=unit.dtype)
    for start in range(0, len(enrol_ids), chunk_size):
        stop = start + chunk_size
        scores[start:stop] = (
            unit[enrol_rows[start:stop]] * unit[test_rows[start:stop]]
        ).sum(dim=1)
    return scores


def window_pair_score_trials(
    window_sets, ids, enrol_ids, test_ids, clamp=True, chunk_size=4096
):
    """Scores trials by the mean cosine over all pairs of their windows.

    The UniPool authors' SincNet score: each utterance is a set of ``K``
    window embeddings; a trial scores the mean, over the ``K x K`` pairs
    of an enrolment and a test window, of their cosine clamped to
    ``[0, 1]``. Without the clamp it equals the cosine-free dot product
    of the two mean unit embeddings.

    Arguments
    ---------
    window_sets : torch.Tensor
        ``[N, K, E]`` window embeddings (normalised here).
    ids : list of str
        The N ids naming the rows.
    enrol_ids : list of str
        The enrolment id of each trial.
    test_ids : list of str
        The test id of each trial.
    clamp : bool
        Clamp each pair's cosine to ``[0, 1]`` (the authors') before the
        mean.
    chunk_size : int
        Trials scored at once.

    Returns
    -------
    torch.Tensor
        ``[n_trials]`` scores.

    Raises
    ------
    KeyError
        If trials name ids not in ``ids``.
    ValueError
        On shape mismatches or duplicate ids.

    Example
    -------
    >>> sets = torch.tensor(
    ...     [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [-1.0, 0.0]]]
    ... )
    >>> window_pair_score_trials(sets, ["a", "b"], ["a"], ["b"]).tolist()
    [0.25]
    >>> window_pair_score_trials(sets, ["a", "b"], ["a"], ["b"], clamp=False)
    tensor([0.])
    """
    window_sets = torch.as_tensor(window_sets)
    if window_sets.dim() != 3:
        raise ValueError(
            "window_sets must be [N, K, E], got shape "
            f"{tuple(window_sets.shape)}"
        )
    enrol_rows, test_rows = _trial_indices(
        ids, window_sets.shape[0], enrol_ids, test_ids
    )
    unit = F.normalize(window_sets, dim=2)
    scores = torch.empty(len(enrol_ids), dtype=unit.dtype)
    for start in range(0, len(enrol_ids), chunk_size):
        stop = start + chunk_size
        pairs = unit[enrol_rows[start:stop]] @ unit[
            test_rows[start:stop]
        ].transpose(1, 2)
        if clamp:
            pairs = pairs.clamp(0.0, 1.0)
        scores[start:stop] = pairs.mean(dim=(1, 2))
    return scores


def _trial_indices(ids, n_rows, enrol_ids, test_ids):
    """The table rows of each trial's two sides, as index tensors."""
    row_of = trial_rows(ids, n_rows, enrol_ids, test_ids)
    enrol_rows = torch.tensor([row_of[i] for i in enrol_ids], dtype=torch.long)
    test_rows = torch.tensor([row_of[i] for i in test_ids], dtype=torch.long)
    return enrol_rows, test_rows


def trial_rows(ids, n_rows, enrol_ids, test_ids):
    """Checks a trial list against an embedding table's row names.

    Arguments
    ---------
    ids : list of str
        The name of each embedding row.
    n_rows : int
        Number of rows of the embedding table.
    enrol_ids : list of str
        Enrolment utterance of each trial.
    test_ids : list of str
        Test utterance of each trial.

    Returns
    -------
    dict
        ``{utterance id: row}``.

    Raises
    ------
    ValueError
        If ``ids`` does not name every row exactly once, or the two trial
        sides differ in length.
    KeyError
        If a trial names an utterance without an embedding (up to five are
        listed).

    Example
    -------
    >>> trial_rows(["a", "b"], 2, ["a"], ["b"])
    {'a': 0, 'b': 1}
    >>> trial_rows(["a", "b"], 2, ["a"], ["c"])
    Traceback (most recent call last):
    ...
    KeyError: "1 trial ids have no embedding, e.g. ['c']"
    """
    if len(ids) != n_rows:
        raise ValueError(f"{len(ids)} ids for {n_rows} embedding rows")
    if len(enrol_ids) != len(test_ids):
        raise ValueError(
            f"{len(enrol_ids)} enrol ids but {len(test_ids)} test ids"
        )
    row_of = {utterance_id: row for row, utterance_id in enumerate(ids)}
    if len(row_of) != len(ids):
        raise ValueError("ids name some embedding rows twice")
    unknown = sorted({i for i in (*enrol_ids, *test_ids) if i not in row_of})
    if unknown:
        raise KeyError(
            f"{len(unknown)} trial ids have no embedding, e.g. {unknown[:5]}"
        )
    return row_of
