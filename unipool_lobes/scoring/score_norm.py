"""Cohort score normalisation (z-norm, t-norm, s-norm) with adaptive top-k.

Gives the same scores as SpeechBrain's
``recipes/VoxCeleb/SpeakerRec/speaker_verification_cosine.py``: each
utterance is cosine-scored against a cohort of impostor embeddings, the
``top_k`` highest cohort scores are kept (the adaptive cohort, SpeechBrain's
``cohort_size``), and their mean and *unbiased* standard deviation
(``torch.std``, divisor ``k - 1``) normalise the trial score:

* z-norm: ``(s - mean_enrol) / std_enrol``;
* t-norm: ``(s - mean_test) / std_test``;
* s-norm: the average of the two.

SpeechBrain recomputes both sides' statistics for every trial; here they
are computed once per unique utterance, a few at a time (``chunk_size``
utterances against the whole cohort), so memory stays bounded and a
Vox1-O list (37,720 trials over 4,874 utterances) needs 4,874 cohort
passes instead of 75,440.

The LAP authors' AS-norm (``src/evaluate/norm_score.py``) is s-norm with
top-k over a *speaker-mean* cohort, on mean-subtracted embeddings:
``speaker_mean_cohort`` builds that cohort (one vector per training
speaker, the mean of its raw utterance embeddings less the mean of all
utterance embeddings) and ``subtract_mean`` centres the trial embeddings;
``ScoreNormalizer(cohort, top_k=600, method="s-norm")`` then gives their
score. ``cohort_statistics(..., exclude=...)`` drops chosen cohort rows per
utterance, for calibration trials drawn from the cohort's own speakers.

Authors
 * unipool-sv developers 2026
"""

import torch
import torch.nn.functional as F

from unipool_lobes.scoring.trial_scoring import cosine_score_trials, trial_rows

NORM_METHODS = ("z-norm", "t-norm", "s-norm")

# SpeechBrain scores with torch.nn.CosineSimilarity(dim=-1, eps=1e-6), which
# divides each vector by max(norm, eps): F.normalize with the same eps.
_COSINE_EPS = 1e-6

# With chunk_size=None, this many cohort scores are held at once
# (2**24 float32 values = 64 MiB).
_AUTO_CHUNK_ELEMENTS = 2**24

# Rows converted to float64 at once by speaker_mean_cohort.
_MEAN_CHUNK_ROWS = 65536


def _check_method(method):
    """Raises ValueError unless ``method`` is a known normalisation."""
    if method not in NORM_METHODS:
        raise ValueError(
            f"unknown score normalisation {method!r}; valid methods are "
            f"{', '.join(NORM_METHODS)}"
        )


def _check_top_k(top_k, cohort_size, n_excluded=0):
    """Returns the number of cohort scores kept, or raises ValueError."""
    if n_excluded:
        if top_k is None:
            top_k = cohort_size - n_excluded
        if top_k > cohort_size - n_excluded:
            raise ValueError(
                f"top_k={top_k} exceeds the {cohort_size - n_excluded} "
                f"cohort rows left once {n_excluded} are excluded"
            )
    if cohort_size < 2:
        raise ValueError(
            f"the cohort has {cohort_size} embeddings; the standard "
            "deviation needs at least 2"
        )
    if top_k is None:
        return cohort_size
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise ValueError(f"top_k must be an int or None, got {top_k!r}")
    if top_k < 2:
        raise ValueError(
            f"top_k={top_k}: the standard deviation needs at least 2 scores"
        )
    if top_k > cohort_size:
        raise ValueError(
            f"top_k={top_k} exceeds the cohort size {cohort_size}; use "
            f"top_k <= {cohort_size} (or None for the whole cohort)"
        )
    return top_k


def _as_matrix(embeddings, name):
    """Returns ``embeddings`` as a floating [N, E] tensor, checked."""
    embeddings = torch.as_tensor(embeddings)
    if embeddings.dim() != 2:
        raise ValueError(
            f"{name} must be [N, E], got shape {tuple(embeddings.shape)}"
        )
    if not embeddings.is_floating_point():
        embeddings = embeddings.to(torch.get_default_dtype())
    return embeddings


def cohort_statistics(
    embeddings, cohort, top_k=None, chunk_size=None, exclude=None
):
    """Mean and std of each utterance's top-k cosine scores on a cohort.

    For each row of ``embeddings``: its cosine similarity to every cohort
    row, the ``top_k`` highest of them, and their mean and unbiased
    standard deviation (``torch.std``, divisor ``k - 1``), as SpeechBrain's
    verification script computes them for each trial side. Utterances are
    scored ``chunk_size`` at a time, so at most ``chunk_size x M`` scores
    are held at once. With ``exclude``, each utterance's listed cohort rows
    are left out before the top-k (the LAP authors' calibration trials
    remove their own speakers from the cohort).

    Arguments
    ---------
    embeddings : torch.Tensor
        The [N, E] embeddings to normalise (one row per unique utterance).
    cohort : torch.Tensor
        The [M, E] cohort (impostor) embeddings.
    top_k : int or None
        How many of the highest cohort scores to keep (2 <= top_k <= M);
        None keeps the whole cohort.
    chunk_size : int or None
        Utterances scored at once; None picks it so that a chunk holds
        about 2**24 scores.
    exclude : torch.Tensor, optional
        ``[N, X]`` cohort rows to leave out for each utterance (-1 pads a
        row with fewer); ``top_k`` may then be at most ``M - X`` and None
        keeps ``M - X`` scores.

    Returns
    -------
    mean : torch.Tensor
        The [N] mean of the kept cohort scores.
    std : torch.Tensor
        The [N] unbiased standard deviation of the kept cohort scores.

    Raises
    ------
    ValueError
        On bad shapes, a cohort of fewer than 2 rows, ``top_k`` outside
        ``[2, M]`` or a non-positive ``chunk_size``.

    Example
    -------
    >>> cohort = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    >>> mean, std = cohort_statistics(torch.tensor([[2.0, 0.0]]), cohort)
    >>> round(mean.item(), 4), round(std.item(), 4)
    (0.0, 1.0)
    >>> mean, std = cohort_statistics(
    ...     torch.tensor([[2.0, 0.0]]), cohort, top_k=2
    ... )
    >>> round(mean.item(), 4), round(std.item(), 4)
    (0.5, 0.7071)
    >>> mean, std = cohort_statistics(
    ...     torch.tensor([[2.0, 0.0]]),
    ...     cohort,
    ...     top_k=2,
    ...     exclude=torch.tensor([[0]]),
    ... )
    >>> round(mean.item(), 4), round(std.item(), 4)
    (-0.5, 0.7071)
    """
    embeddings = _as_matrix(embeddings, "embeddings")
    cohort = _as_matrix(cohort, "cohort")
    if embeddings.shape[1] != cohort.shape[1]:
        raise ValueError(
            f"embeddings have {embeddings.shape[1]} dimensions, the cohort "
            f"has {cohort.shape[1]}"
        )
    if exclude is not None:
        exclude = torch.as_tensor(exclude, dtype=torch.long)
        if exclude.dim() != 2 or exclude.shape[0] != embeddings.shape[0]:
            raise ValueError(
                f"exclude must be [{embeddings.shape[0]}, X], got shape "
                f"{tuple(exclude.shape)}"
            )
        if exclude.numel() and int(exclude.max()) >= cohort.shape[0]:
            raise ValueError(
                f"exclude names cohort row {int(exclude.max())} of "
                f"{cohort.shape[0]}"
            )
        if exclude.shape[1] == 0:
            exclude = None
    n_excluded = 0 if exclude is None else exclude.shape[1]
    n_kept = _check_top_k(top_k, cohort.shape[0], n_excluded)
    if chunk_size is None:
        chunk_size = max(1, _AUTO_CHUNK_ELEMENTS // cohort.shape[0])
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    dtype = torch.promote_types(embeddings.dtype, cohort.dtype)
    unit = F.normalize(embeddings.to(dtype), dim=1, eps=_COSINE_EPS)
    unit_cohort = F.normalize(
        cohort.to(device=unit.device, dtype=dtype), dim=1, eps=_COSINE_EPS
    )
    mean = torch.empty(unit.shape[0], dtype=dtype, device=unit.device)
    std = torch.empty(unit.shape[0], dtype=dtype, device=unit.device)
    with torch.no_grad():
        for start in range(0, unit.shape[0], chunk_size):
            stop = start + chunk_size
            scores = unit[start:stop] @ unit_cohort.T
            if exclude is not None:
                _drop_rows(scores, exclude[start:stop].to(scores.device))
            if n_kept < scores.shape[1]:
                scores = scores.topk(n_kept, dim=1, sorted=False).values
            std[start:stop], mean[start:stop] = torch.std_mean(scores, dim=1)
    return mean, std


def _drop_rows(scores, exclude):
    """Sets ``scores[i, exclude[i, j]]`` to -inf (rows of -1 are padding)."""
    hits = torch.zeros(scores.shape, dtype=torch.int32, device=scores.device)
    hits.scatter_add_(1, exclude.clamp(min=0), (exclude >= 0).to(torch.int32))
    scores.masked_fill_(hits > 0, float("-inf"))


def speaker_mean_cohort(embeddings, speakers):
    """The LAP authors' AS-norm cohort: one centred mean per speaker.

    Each speaker's vector is the mean of its raw utterance embeddings;
    the cohort mean (the mean of all utterance embeddings, not of the
    speaker means) is then subtracted from every one. Speakers come in the
    order of their first utterance. Sums are accumulated in float64.

    Arguments
    ---------
    embeddings : torch.Tensor
        The [U, E] raw utterance embeddings of the cohort set.
    speakers : list of str
        The U speaker ids of the rows.

    Returns
    -------
    speaker_ids : list of str
        The S speakers, in order of first appearance.
    cohort : torch.Tensor
        The [S, E] centred speaker means, in the embeddings' dtype.
    cohort_mean : torch.Tensor
        The [E] mean utterance embedding, in the embeddings' dtype.

    Raises
    ------
    ValueError
        On bad shapes or mismatched lengths.

    Example
    -------
    >>> table = torch.tensor([[2.0, 0.0], [4.0, 0.0], [0.0, 6.0]])
    >>> ids, cohort, mean = speaker_mean_cohort(table, ["a", "a", "b"])
    >>> ids, mean.tolist(), cohort.tolist()
    (['a', 'b'], [2.0, 2.0], [[1.0, -2.0], [-2.0, 4.0]])
    """
    embeddings = _as_matrix(embeddings, "embeddings")
    speakers = list(speakers)
    if len(speakers) != embeddings.shape[0]:
        raise ValueError(
            f"{len(speakers)} speaker ids for {embeddings.shape[0]} embeddings"
        )
    if not speakers:
        raise ValueError("speaker_mean_cohort got no embeddings")
    row_of = {}
    for speaker in speakers:
        row_of.setdefault(speaker, len(row_of))
    index = torch.tensor([row_of[s] for s in speakers], dtype=torch.long)
    sums = torch.zeros(len(row_of), embeddings.shape[1], dtype=torch.float64)
    # A float64 copy of a few rows at a time (VoxCeleb2: 1.1 M rows).
    for start in range(0, len(speakers), _MEAN_CHUNK_ROWS):
        stop = start + _MEAN_CHUNK_ROWS
        rows = embeddings[start:stop].detach().cpu().to(torch.float64)
        sums.index_add_(0, index[start:stop], rows)
    counts = torch.bincount(index, minlength=len(row_of)).to(torch.float64)
    cohort_mean = sums.sum(dim=0) / len(speakers)
    cohort = sums / counts.unsqueeze(1) - cohort_mean
    dtype = embeddings.dtype
    return list(row_of), cohort.to(dtype), cohort_mean.to(dtype)


def subtract_mean(embeddings, mean):
    """Centres embeddings on a mean vector (the LAP authors' scoring).

    Arguments
    ---------
    embeddings : torch.Tensor
        The [N, E] embeddings.
    mean : torch.Tensor
        The [E] mean (``speaker_mean_cohort``'s ``cohort_mean``).

    Returns
    -------
    torch.Tensor
        The [N, E] embeddings less the mean.

    Raises
    ------
    ValueError
        On bad shapes.

    Example
    -------
    >>> subtract_mean(torch.ones(2, 3), torch.tensor([1.0, 0.0, 2.0]))
    tensor([[ 0.,  1., -1.],
            [ 0.,  1., -1.]])
    """
    embeddings = _as_matrix(embeddings, "embeddings")
    mean = torch.as_tensor(mean)
    if mean.shape != (embeddings.shape[1],):
        raise ValueError(
            f"the mean must be [{embeddings.shape[1]}], got shape "
            f"{tuple(mean.shape)}"
        )
    return embeddings - mean.to(embeddings)


def normalize_scores(
    scores, enrol_index, test_index, mean, std, method="s-norm"
):
    """Normalises trial scores with per-utterance cohort statistics.

    ``mean`` and ``std`` hold one value per utterance (from
    ``cohort_statistics``); each trial names its enrolment and test
    utterance by their row in them. z-norm uses the enrolment side, t-norm
    the test side, s-norm averages the two normalised scores, as
    SpeechBrain's verification script does. A zero std gives inf or NaN,
    as in SpeechBrain.

    Arguments
    ---------
    scores : torch.Tensor
        The [T] raw trial scores.
    enrol_index : torch.Tensor or list of int
        The [T] row of each trial's enrolment utterance in ``mean``/``std``.
    test_index : torch.Tensor or list of int
        The [T] row of each trial's test utterance in ``mean``/``std``.
    mean : torch.Tensor
        The [N] mean cohort score of each utterance.
    std : torch.Tensor
        The [N] standard deviation of the cohort scores of each utterance.
    method : str
        ``"z-norm"``, ``"t-norm"`` or ``"s-norm"``.

    Returns
    -------
    normalized : torch.Tensor
        The [T] normalised scores.

    Raises
    ------
    ValueError
        On an unknown method, mismatched lengths or indices out of range.

    Example
    -------
    >>> mean, std = torch.tensor([0.1, 0.2]), torch.tensor([0.5, 0.25])
    >>> scores = torch.tensor([0.6])
    >>> for method in NORM_METHODS:
    ...     normalized = normalize_scores(scores, [0], [1], mean, std, method)
    ...     print(method, round(normalized.item(), 4))
    z-norm 1.0
    t-norm 1.6
    s-norm 1.3
    """
    _check_method(method)
    scores = torch.as_tensor(scores)
    mean = torch.as_tensor(mean)
    std = torch.as_tensor(std)
    enrol_index = torch.as_tensor(
        enrol_index, dtype=torch.long, device=mean.device
    ).reshape(-1)
    test_index = torch.as_tensor(
        test_index, dtype=torch.long, device=mean.device
    ).reshape(-1)
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D, got {tuple(scores.shape)}")
    if not len(scores) == len(enrol_index) == len(test_index):
        raise ValueError(
            f"{len(scores)} scores, {len(enrol_index)} enrol indices and "
            f"{len(test_index)} test indices: they must match"
        )
    if mean.shape != std.shape or mean.dim() != 1:
        raise ValueError(
            f"mean {tuple(mean.shape)} and std {tuple(std.shape)} must be "
            "1-D and of the same length"
        )
    for name, index in (
        ("enrol_index", enrol_index),
        ("test_index", test_index),
    ):
        if len(index) and (index.min() < 0 or index.max() >= len(mean)):
            raise ValueError(
                f"{name} holds rows outside [0, {len(mean)}): "
                f"{index.min().item()}..{index.max().item()}"
            )
    if method == "z-norm":
        return (scores - mean[enrol_index]) / std[enrol_index]
    if method == "t-norm":
        return (scores - mean[test_index]) / std[test_index]
    enrol_normalized = (scores - mean[enrol_index]) / std[enrol_index]
    test_normalized = (scores - mean[test_index]) / std[test_index]
    return 0.5 * (enrol_normalized + test_normalized)


class ScoreNormalizer:
    """Cosine scoring with cohort normalisation, statistics cached per id.

    Computes the cohort statistics once for each unique utterance that the
    trials need (enrolment side for z-norm, test side for t-norm, both for
    s-norm), then normalises every trial score with them.

    Arguments
    ---------
    cohort_embeddings : torch.Tensor
        The [M, E] cohort (impostor) embeddings.
    top_k : int or None
        How many of the highest cohort scores to keep per utterance
        (SpeechBrain's ``cohort_size``; 2 <= top_k <= M). A ``top_k``
        larger than the cohort is an error, not clamped, as in SpeechBrain.
        None keeps the whole cohort.
    method : str
        ``"z-norm"``, ``"t-norm"`` or ``"s-norm"``.
    chunk_size : int or None
        Utterances scored against the cohort at once (see
        ``cohort_statistics``).

    Raises
    ------
    ValueError
        On an unknown method, a bad cohort or a bad ``top_k``.

    Example
    -------
    >>> generator = torch.Generator().manual_seed(0)
    >>> normalizer = ScoreNormalizer(
    ...     torch.randn(50, 8, generator=generator), top_k=10
    ... )
    >>> table = torch.randn(3, 8, generator=generator)
    >>> scores = normalizer(table, ["a", "b", "c"], ["a", "a"], ["b", "c"])
    >>> scores.shape
    torch.Size([2])
    """

    def __init__(
        self, cohort_embeddings, top_k=None, method="s-norm", chunk_size=None
    ):
        _check_method(method)
        self.cohort = _as_matrix(cohort_embeddings, "cohort_embeddings")
        _check_top_k(top_k, self.cohort.shape[0])
        self.top_k = top_k
        self.method = method
        self.chunk_size = chunk_size

    def __call__(self, embeddings, ids, enrol_ids, test_ids, raw_scores=None):
        """Scores (or takes the raw scores of) the trials and normalises them.

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
        raw_scores : torch.Tensor, optional
            The [T] raw trial scores; None cosine-scores the trials with
            ``unipool_lobes.scoring.metrics.cosine_score_trials``.

        Returns
        -------
        normalized : torch.Tensor
            The [T] normalised scores.

        Raises
        ------
        KeyError
            If trials name ids not in ``ids``.
        ValueError
            On shape or length mismatches or duplicate ids.

        Example
        -------
        >>> cohort = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
        >>> normalizer = ScoreNormalizer(cohort, method="z-norm")
        >>> table = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
        >>> scores = normalizer(table, ["a", "b"], ["a"], ["b"])
        >>> round(scores.item(), 4)
        0.7071
        """
        embeddings = _as_matrix(embeddings, "embeddings")
        row_of = trial_rows(ids, embeddings.shape[0], enrol_ids, test_ids)
        if raw_scores is None:
            raw_scores = cosine_score_trials(
                embeddings, ids, enrol_ids, test_ids
            )
        raw_scores = torch.as_tensor(raw_scores).reshape(-1)
        if len(raw_scores) != len(enrol_ids):
            raise ValueError(
                f"{len(raw_scores)} raw scores for {len(enrol_ids)} trials"
            )
        needed = []
        if self.method in ("z-norm", "s-norm"):
            needed.extend(enrol_ids)
        if self.method in ("t-norm", "s-norm"):
            needed.extend(test_ids)
        unique_ids = list(dict.fromkeys(needed))
        stats_row = {
            utterance_id: r for r, utterance_id in enumerate(unique_ids)
        }
        rows = torch.tensor([row_of[i] for i in unique_ids], dtype=torch.long)
        mean, std = cohort_statistics(
            embeddings[rows], self.cohort, self.top_k, self.chunk_size
        )
        # The side a method does not use points at row 0, never read.
        enrol_index = [stats_row.get(i, 0) for i in enrol_ids]
        test_index = [stats_row.get(i, 0) for i in test_ids]
        return normalize_scores(
            raw_scores.to(device=mean.device, dtype=mean.dtype),
            enrol_index,
            test_index,
            mean,
            std,
            self.method,
        )
