"""Exact, fast speaker-verification metrics and cosine trial scoring.

``EER`` and ``minDCF`` return exactly what
``speechbrain.utils.metric_stats.EER`` / ``minDCF`` return (same candidate
thresholds, same float32 rates, same tie-breaking, so the same value *and*
threshold), but in O(N log N) time and O(N) memory: one sort and a binary
search replace SpeechBrain's Python loop over thresholds (EER, O(N^2) time)
and its [thresholds x trials] matrices (minDCF, O(N^2) memory). A
Vox1-H-sized list (552,536 trials) takes well under a second.

``Cllr`` and ``minCllr`` measure the calibration of log-likelihood-ratio
scores (Brummer and du Preez, 2006), in bits: the cost of the LLRs as they
are, and the cost after the best monotone recalibration (PAV).

The module also scores trials by cosine similarity over an embedding table,
gives the DET curve, and reads / writes score files (``enrol test label
score`` per line).

Authors
 * unipool-sv developers 2026
"""

import math
import os
import pathlib
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

# Two |FAR - FRR| values closer than this (relative) may swap order between
# float32 and float64; SpeechBrain's scan compares across the two precisions,
# so all values below the first wider jump are replayed one by one.
_RELATIVE_GAP = 1e-5

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}

# The calibration fields of ``verification_results(..., llr=True)``.
CLLR_KEYS = ("Cllr", "minCllr")


def _as_score_array(scores, name):
    """Returns ``scores`` as a 1-D floating numpy array (no copy if possible).

    Torch tensors and numpy arrays keep their floating dtype; lists and
    integer or boolean inputs become torch's default float dtype (float32),
    as ``torch.tensor(list)`` would give SpeechBrain.
    """
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu()
        if scores.dtype == torch.bfloat16:
            scores = scores.float()
        array = scores.numpy()
    else:
        array = np.asarray(scores)
    if array.dtype.kind != "f":
        default = _NUMPY_DTYPES.get(torch.get_default_dtype(), np.float32)
        array = array.astype(default)
    array = array.reshape(-1)
    if array.size == 0:
        raise ValueError(
            f"{name} is empty: EER / minDCF need at least one positive "
            "and one negative score"
        )
    if np.isnan(array).any():
        raise ValueError(f"{name} contains NaN scores")
    return array


def _score_pair(positive_scores, negative_scores):
    """Converts both score lists and promotes them to one dtype."""
    positive = _as_score_array(positive_scores, "positive_scores")
    negative = _as_score_array(negative_scores, "negative_scores")
    common = np.result_type(positive.dtype, negative.dtype)
    return positive.astype(common, copy=False), negative.astype(
        common, copy=False
    )


def _candidate_thresholds(unique_scores):
    """SpeechBrain's thresholds: the sorted unique scores and their midpoints.

    The midpoints are computed in the scores' dtype, as SpeechBrain does, so
    two adjacent float32 scores can give a midpoint equal to one of them.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        midpoints = (unique_scores[:-1] + unique_scores[1:]) / 2
    in_order = np.all(midpoints >= unique_scores[:-1]) and np.all(
        midpoints <= unique_scores[1:]
    )
    if not in_order:
        # Overflow or (-inf + inf): fall back to a sort (NaN goes last).
        return np.sort(np.concatenate([unique_scores, midpoints]))
    thresholds = np.empty(2 * unique_scores.size - 1, unique_scores.dtype)
    thresholds[0::2] = unique_scores
    thresholds[1::2] = midpoints
    return thresholds


def _error_counts(positive, negative, thresholds):
    """Counts misses (pos <= t) and false alarms (neg > t) at each threshold."""
    n_miss = np.searchsorted(np.sort(positive), thresholds, side="right")
    n_false_alarm = negative.size - np.searchsorted(
        np.sort(negative), thresholds, side="right"
    )
    undefined = np.isnan(thresholds)
    if undefined.any():
        # Comparisons with NaN are false: no miss, no false alarm.
        n_miss[undefined] = 0
        n_false_alarm[undefined] = 0
    return n_miss, n_false_alarm


def _float32_rates(positive_scores, negative_scores):
    """Thresholds and SpeechBrain's float32 (FRR, FAR) at each of them."""
    positive, negative = _score_pair(positive_scores, negative_scores)
    unique_scores = np.unique(np.concatenate([positive, negative]))
    thresholds = _candidate_thresholds(unique_scores)
    n_miss, n_false_alarm = _error_counts(positive, negative, thresholds)
    # SpeechBrain: count.float() / n, i.e. a float32 division.
    frr = n_miss.astype(np.float32) / np.float32(positive.size)
    far = n_false_alarm.astype(np.float32) / np.float32(negative.size)
    return thresholds, frr, far


def _speechbrain_eer_index(frr, far):
    """Index SpeechBrain's EER loop ends on, without looping over all.

    SpeechBrain keeps threshold ``i`` when the float32 ``|FAR - FRR|`` is
    strictly below the float64 one of the kept threshold, so rounding can
    move it past an equal gap. Rounding changes a gap by far less than
    ``_RELATIVE_GAP``: cut the sorted gaps at their first relative jump
    above that; every gap below the cut beats every gap above it in both
    precisions, so the loop ends on one below the cut. Those few are
    replayed in order, the first one always kept.
    """
    gap32 = np.abs(far - frr)
    gap64 = np.abs(far.astype(np.float64) - frr.astype(np.float64))
    lowest = float(gap32.min())
    bound = lowest
    if lowest > 0:
        largest = float(gap32.max())
        cap = 2 * lowest
        while True:
            near = np.unique(gap32[gap32 <= cap]).astype(np.float64)
            jumps = np.flatnonzero(near[1:] > near[:-1] * (1 + _RELATIVE_GAP))
            if jumps.size:
                bound = near[jumps[0]]
                break
            if cap >= largest:
                bound = near[-1]
                break
            cap *= 2
    candidates = np.flatnonzero(gap32 <= bound).tolist()
    kept = candidates[0]
    kept_gap = gap64[kept]
    for index in candidates[1:]:
        if gap32[index] < kept_gap:
            kept, kept_gap = index, gap64[index]
    return kept


def _speechbrain_dcf(frr, far, c_miss, c_fa, p_target):
    """SpeechBrain's float32 detection cost at each threshold."""
    return (np.float32(c_miss) * frr) * np.float32(p_target) + (
        np.float32(c_fa) * far
    ) * np.float32(1 - p_target)


def EER(positive_scores, negative_scores):
    """Computes the EER (and its threshold), as SpeechBrain does, fast.

    Same definition, value and threshold as
    ``speechbrain.utils.metric_stats.EER``: candidate thresholds are the
    sorted unique scores plus their midpoints, FRR = P(pos <= t) and
    FAR = P(neg > t) in float32, the kept threshold minimises |FAR - FRR|
    with SpeechBrain's tie-breaking, and the EER is (FAR + FRR) / 2 there.
    It runs in O(N log N) time and O(N) memory.

    Arguments
    ---------
    positive_scores : torch.Tensor, numpy.ndarray or list
        The scores of target trials (same speaker). Lists become float32.
    negative_scores : torch.Tensor, numpy.ndarray or list
        The scores of non-target trials (different speakers).

    Returns
    -------
    EER : float
        The equal error rate, a fraction.
    threshold : float
        The threshold at which it is reached.

    Raises
    ------
    ValueError
        If a score list is empty or holds NaN.

    Example
    -------
    >>> positive_scores = torch.tensor([0.6, 0.7, 0.8, 0.5])
    >>> negative_scores = torch.tensor([0.4, 0.3, 0.2, 0.1])
    >>> EER(positive_scores, negative_scores)
    (0.0, 0.4000000059604645)
    >>> value, threshold = EER([0.9, 0.2, 0.7], [0.1, 0.8])
    >>> round(value, 4), round(threshold, 4)
    (0.4167, 0.2)
    """
    thresholds, frr, far = _float32_rates(positive_scores, negative_scores)
    index = _speechbrain_eer_index(frr, far)
    eer = (float(far[index]) + float(frr[index])) / 2
    return float(eer), float(thresholds[index])


def minDCF(
    positive_scores, negative_scores, c_miss=1.0, c_fa=1.0, p_target=0.01
):
    """Computes SpeechBrain's (unnormalised) minDCF and its threshold, fast.

    Same value and threshold as ``speechbrain.utils.metric_stats.minDCF``:
    the minimum over SpeechBrain's candidate thresholds of
    ``c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)`` in
    float32, the first threshold reaching it. O(N log N) time, O(N) memory
    (SpeechBrain's needs O(N^2) memory). See ``normalized_minDCF`` for the
    NIST / Kaldi normalised form.

    Arguments
    ---------
    positive_scores : torch.Tensor, numpy.ndarray or list
        The scores of target trials (same speaker). Lists become float32.
    negative_scores : torch.Tensor, numpy.ndarray or list
        The scores of non-target trials (different speakers).
    c_miss : float
        Cost assigned to a missing error (default 1.0).
    c_fa : float
        Cost assigned to a false alarm (default 1.0).
    p_target : float
        Prior probability of having a target (default 0.01).

    Returns
    -------
    minDCF : float
        The minimum detection cost (unnormalised, at most 0.01 with the
        defaults).
    threshold : float
        The threshold at which it is reached.

    Raises
    ------
    ValueError
        If a score list is empty or holds NaN.

    Example
    -------
    >>> positive_scores = torch.tensor([0.6, 0.7, 0.8, 0.5])
    >>> negative_scores = torch.tensor([0.4, 0.3, 0.2, 0.1])
    >>> minDCF(positive_scores, negative_scores)
    (0.0, 0.4000000059604645)
    >>> value, threshold = minDCF([0.9, 0.2, 0.7], [0.1, 0.8], p_target=0.5)
    >>> round(value, 4), round(threshold, 4)
    (0.25, 0.1)
    """
    thresholds, frr, far = _float32_rates(positive_scores, negative_scores)
    costs = _speechbrain_dcf(frr, far, c_miss, c_fa, p_target)
    index = int(np.argmin(costs))
    return float(costs[index]), float(thresholds[index])


def _dcf_normaliser(c_miss, c_fa, p_target):
    """The cost of the best trivial system: min(c_miss*P_t, c_fa*(1-P_t))."""
    return min(c_miss * p_target, c_fa * (1 - p_target))


def normalized_minDCF(
    positive_scores, negative_scores, c_miss=1.0, c_fa=1.0, p_target=0.01
):
    """Computes the normalised minDCF (NIST SRE / Kaldi form).

    ``minDCF`` divided by ``min(c_miss * p_target, c_fa * (1 - p_target))``,
    the cost of always accepting or always rejecting, so that 1.0 means no
    better than a trivial system.

    Arguments
    ---------
    positive_scores : torch.Tensor, numpy.ndarray or list
        The scores of target trials (same speaker).
    negative_scores : torch.Tensor, numpy.ndarray or list
        The scores of non-target trials (different speakers).
    c_miss : float
        Cost assigned to a missing error (default 1.0).
    c_fa : float
        Cost assigned to a false alarm (default 1.0).
    p_target : float
        Prior probability of having a target (default 0.01).

    Returns
    -------
    minDCF : float
        The normalised minimum detection cost.
    threshold : float
        The threshold at which it is reached.

    Raises
    ------
    ValueError
        If a score list is empty or holds NaN.

    Example
    -------
    >>> value, threshold = normalized_minDCF([0.9, 0.2, 0.7], [0.1, 0.8])
    >>> round(value, 4), round(threshold, 4)
    (0.6667, 0.8)
    """
    value, threshold = minDCF(
        positive_scores, negative_scores, c_miss, c_fa, p_target
    )
    return value / _dcf_normaliser(c_miss, c_fa, p_target), threshold


def _logistic_cost(llrs):
    """``log(1 + exp(llrs))`` in nats, without overflow (inf for +inf)."""
    return np.logaddexp(0.0, llrs)


def Cllr(positive_scores, negative_scores):
    """The log-likelihood-ratio cost of LLR scores, in bits.

    ``Cllr = (mean_tar log2(1 + e^-llr) + mean_non log2(1 + e^llr)) / 2``
    for LLRs in nats (natural log): 0 for perfect, well-calibrated scores,
    1 for the useless all-zero LLRs, above 1 for scores worse than
    useless (misaligned or overconfident). Meaningful only when the scores
    are LLRs; of any other score it is the cost of taking it as one.

    Arguments
    ---------
    positive_scores : torch.Tensor, numpy.ndarray or list
        The LLRs (nats) of target trials.
    negative_scores : torch.Tensor, numpy.ndarray or list
        The LLRs (nats) of non-target trials.

    Returns
    -------
    float
        Cllr in bits.

    Raises
    ------
    ValueError
        If a score list is empty or holds NaN.

    Example
    -------
    >>> Cllr([0.0, 0.0], [0.0])
    1.0
    >>> round(Cllr([10.0], [-10.0]), 5)
    7e-05
    """
    positive, negative = _score_pair(positive_scores, negative_scores)
    positive = positive.astype(np.float64)
    negative = negative.astype(np.float64)
    target_cost = float(np.mean(_logistic_cost(-positive)))
    non_target_cost = float(np.mean(_logistic_cost(negative)))
    return (target_cost + non_target_cost) / (2 * math.log(2))


def pav_llrs(positive_scores, negative_scores):
    """The optimal monotone LLRs of scores: PAV, at the trials' prior.

    Isotonic regression (pool-adjacent-violators, equal scores pooled
    together) of the labels on the scores gives each trial the posterior
    target probability ``p`` of the best non-decreasing map; the LLR is
    ``logit(p) - log(n_target / n_non_target)``, +inf or -inf where a
    pool holds one class only.

    Arguments
    ---------
    positive_scores : torch.Tensor, numpy.ndarray or list
        The scores of target trials.
    negative_scores : torch.Tensor, numpy.ndarray or list
        The scores of non-target trials.

    Returns
    -------
    positive_llrs : numpy.ndarray
        The float64 LLRs (nats) of the target trials, in their order.
    negative_llrs : numpy.ndarray
        The float64 LLRs of the non-target trials.

    Raises
    ------
    ValueError
        If a score list is empty or holds NaN.

    Example
    -------
    >>> positive, negative = pav_llrs([0.9, 0.3], [0.1, 0.5])
    >>> positive.tolist(), negative.tolist()
    ([inf, 0.0], [-inf, 0.0])
    """
    positive, negative = _score_pair(positive_scores, negative_scores)
    scores = np.concatenate([positive, negative]).astype(np.float64)
    labels = np.concatenate([np.ones(positive.size), np.zeros(negative.size)])
    posterior = _pav(scores, labels)
    prior_log_odds = np.log(positive.size / negative.size)
    with np.errstate(divide="ignore"):
        llrs = np.log(posterior) - np.log1p(-posterior) - prior_log_odds
    return llrs[: positive.size], llrs[positive.size :]


def _pav(scores, labels):
    """Isotonic (non-decreasing) fit of 0/1 ``labels`` on ``scores``.

    Ties are pooled first (their mean label), then adjacent pools that
    violate the order are merged, weighted by their trial counts.
    """
    order = np.argsort(scores, kind="stable")
    _, first, counts = np.unique(
        scores[order], return_index=True, return_counts=True
    )
    sums = np.add.reduceat(labels[order], first)
    pool_sums, pool_counts = [], []
    for total, count in zip(sums.tolist(), counts.tolist(), strict=True):
        while pool_sums and pool_sums[-1] * count >= total * pool_counts[-1]:
            total += pool_sums.pop()
            count += pool_counts.pop()
        pool_sums.append(total)
        pool_counts.append(count)
    means = np.repeat(
        np.asarray(pool_sums) / np.asarray(pool_counts),
        np.asarray(pool_counts),
    )
    fitted = np.empty(scores.size)
    fitted[order] = means
    return fitted


def minCllr(positive_scores, negative_scores):
    """The Cllr after the best monotone recalibration (PAV), in bits.

    The discrimination part of ``Cllr``: any strictly increasing transform
    of the scores gives the same value, and ``minCllr <= Cllr`` for LLRs.
    Meaningful for any score, LLR or not.

    Arguments
    ---------
    positive_scores : torch.Tensor, numpy.ndarray or list
        The scores of target trials.
    negative_scores : torch.Tensor, numpy.ndarray or list
        The scores of non-target trials.

    Returns
    -------
    float
        min Cllr in bits (0 when the classes are separated, 1 when the
        scores say nothing).

    Raises
    ------
    ValueError
        If a score list is empty or holds NaN.

    Example
    -------
    >>> minCllr([0.9, 0.8], [0.1, 0.2])
    0.0
    >>> minCllr([0.5, 0.5], [0.5, 0.5])
    1.0
    """
    return Cllr(*pav_llrs(positive_scores, negative_scores))


def det_curve(positive_scores, negative_scores):
    """Returns every operating point of a detector, for a DET plot.

    One point per unique score ``t`` (SpeechBrain's midpoint thresholds add
    no new points): ``p_miss = P(pos <= t)`` and ``p_fa = P(neg > t)``, in
    float64. With the thresholds ascending, ``p_miss`` is non-decreasing
    and ``p_fa`` non-increasing.

    Arguments
    ---------
    positive_scores : torch.Tensor, numpy.ndarray or list
        The scores of target trials (same speaker).
    negative_scores : torch.Tensor, numpy.ndarray or list
        The scores of non-target trials (different speakers).

    Returns
    -------
    p_fa : numpy.ndarray
        False-alarm rate at each threshold, float64.
    p_miss : numpy.ndarray
        Miss rate at each threshold, float64.
    thresholds : numpy.ndarray
        The ascending thresholds (the unique scores), float64.

    Raises
    ------
    ValueError
        If a score list is empty or holds NaN.

    Example
    -------
    >>> p_fa, p_miss, thresholds = det_curve([0.9, 0.2, 0.7], [0.1, 0.8])
    >>> p_fa.tolist()
    [0.5, 0.5, 0.5, 0.0, 0.0]
    >>> p_miss.round(3).tolist()
    [0.0, 0.333, 0.667, 0.667, 1.0]
    """
    positive, negative = _score_pair(positive_scores, negative_scores)
    thresholds = np.unique(np.concatenate([positive, negative]))
    n_miss, n_false_alarm = _error_counts(positive, negative, thresholds)
    p_miss = n_miss / positive.size
    p_fa = n_false_alarm / negative.size
    return p_fa, p_miss, thresholds.astype(np.float64)


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


def _as_labels(labels, n_scores, name="labels"):
    """Returns the labels as a 0/1 int64 numpy array, checked."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels).reshape(-1)
    if labels.size != n_scores:
        raise ValueError(f"{labels.size} {name} for {n_scores} scores")
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}[{first}] is {labels[first].item()!r}; "
            "labels must be 0 or 1"
        )
    return labels.astype(np.int64)


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


def dcf_names(p_target):
    """Names the detection-cost fields of ``verification_results``.

    Two forms of the minimum detection cost are in use under the one name
    "minDCF": SpeechBrain's ``minDCF`` function (which the UniPool authors
    copied) returns the *unnormalised* minimum of
    ``c_miss p_target P_miss + c_fa (1 - p_target) P_fa``, here
    ``min_Cdet``; NIST's and Kaldi's minDCF divides it by
    ``min(c_miss p_target, c_fa (1 - p_target))``, here ``norm_minDCF``.
    Each field names its form and its target prior.

    Arguments
    ---------
    p_target : float
        Prior probability of a target.

    Returns
    -------
    normalised : str
        The normalised minimum cost's field.
    unnormalised : str
        SpeechBrain's (unnormalised) minimum cost's field.
    threshold : str
        The field of the threshold where both are reached.

    Example
    -------
    >>> dcf_names(0.01)
    ('norm_minDCF_p0.01', 'min_Cdet_p0.01', 'minDCF_threshold_p0.01')
    """
    suffix = f"p{p_target:g}"
    return (
        f"norm_minDCF_{suffix}",
        f"min_Cdet_{suffix}",
        f"minDCF_threshold_{suffix}",
    )


def reported_metrics(results, digits=4):
    """Picks the figures to report from ``verification_results``.

    Arguments
    ---------
    results : dict
        As ``verification_results`` returns it.
    digits : int
        Decimals kept.

    Returns
    -------
    dict
        ``EER`` in percent, then both detection-cost forms at every prior,
        under their unambiguous names, then ``Cllr`` and ``minCllr`` when
        ``results`` holds them (``verification_results(..., llr=True)``).

    Example
    -------
    >>> results = verification_results([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1])
    >>> reported_metrics(results)
    {'EER': 50.0, 'norm_minDCF_p0.01': 0.5, 'min_Cdet_p0.01': 0.005, \
'norm_minDCF_p0.05': 0.5, 'min_Cdet_p0.05': 0.025}
    """
    metrics = {"EER": round(results["EER_percent"], digits)}
    for p_target in results["p_targets"]:
        normalised, unnormalised, _ = dcf_names(p_target)
        metrics[normalised] = round(results[normalised], digits)
        metrics[unnormalised] = round(results[unnormalised], digits + 2)
    for name in CLLR_KEYS:
        if name in results:
            metrics[name] = round(results[name], digits)
    return metrics


def metrics_line(results):
    """Formats the reported figures on one line, for logs and the CLI.

    Arguments
    ---------
    results : dict
        As ``verification_results`` returns it.

    Returns
    -------
    str
        ``EER 50.00 %  norm_minDCF_p0.01 0.5000  min_Cdet_p0.01 ...``
        (then ``Cllr ...  minCllr ...`` when ``results`` holds them).

    Example
    -------
    >>> results = verification_results([1, 0], [0.9, 0.1], p_targets=[0.01])
    >>> metrics_line(results)
    'EER 0.00 %  norm_minDCF_p0.01 0.0000  min_Cdet_p0.01 0.000000'
    """
    parts = [f"EER {results['EER_percent']:.2f} %"]
    for p_target in results["p_targets"]:
        normalised, unnormalised, _ = dcf_names(p_target)
        parts.append(f"{normalised} {results[normalised]:.4f}")
        parts.append(f"{unnormalised} {results[unnormalised]:.6f}")
    for name in CLLR_KEYS:
        if name in results:
            parts.append(f"{name} {results[name]:.4f}")
    return "  ".join(parts)


def verification_results(
    labels, scores, p_targets=(0.01, 0.05), c_miss=1, c_fa=1, llr=False
):
    """Computes the verification metrics of a scored trial list.

    The EER and the minimum detection costs are exactly SpeechBrain's (see
    ``EER`` and ``minDCF``), computed from one sort.

    Arguments
    ---------
    labels : list, numpy.ndarray or torch.Tensor
        1 for a target trial, 0 for a non-target one.
    scores : list, numpy.ndarray or torch.Tensor
        The score of each trial (lists become float32).
    p_targets : sequence of float
        Priors of a target, one operating point of the detection cost each
        (the authors report 0.01).
    c_miss : float
        Cost of a miss.
    c_fa : float
        Cost of a false alarm.
    llr : bool
        Also give ``Cllr`` and ``minCllr`` (bits), taking the scores as
        log-likelihood ratios in nats (see ``Cllr`` and ``minCllr``).

    Returns
    -------
    results : dict
        ``EER`` (fraction), ``EER_percent``, ``threshold`` (the EER's); for
        each prior the fields named by ``dcf_names``: the normalised minDCF
        (``norm_minDCF_p0.01``), SpeechBrain's unnormalised one
        (``min_Cdet_p0.01``) and their threshold; with ``llr``, ``Cllr``
        and ``minCllr``; ``p_targets``, ``c_miss``, ``c_fa``,
        ``n_trials``, ``n_positive``, ``n_negative``: plain python
        numbers, JSON-ready.

    Raises
    ------
    ValueError
        If the lengths differ, a label is not 0/1, or a class is missing.

    Example
    -------
    >>> labels = [1, 1, 1, 0, 0]
    >>> results = verification_results(labels, [0.9, 0.2, 0.7, 0.1, 0.8])
    >>> round(results["EER_percent"], 2), results["n_positive"]
    (41.67, 3)
    >>> round(results["norm_minDCF_p0.01"], 4)
    0.6667
    >>> round(results["min_Cdet_p0.01"], 4)
    0.0067
    >>> results = verification_results([1, 0], [0.0, 0.0], llr=True)
    >>> results["Cllr"], results["minCllr"]
    (1.0, 1.0)
    """
    scores = _as_score_array(scores, "scores")
    labels = _as_labels(labels, scores.size)
    is_target = labels == 1
    thresholds, frr, far = _float32_rates(scores[is_target], scores[~is_target])
    eer_index = _speechbrain_eer_index(frr, far)
    eer = (float(far[eer_index]) + float(frr[eer_index])) / 2
    results = {
        "EER": eer,
        "EER_percent": 100 * eer,
        "threshold": float(thresholds[eer_index]),
    }
    for p_target in p_targets:
        costs = _speechbrain_dcf(frr, far, c_miss, c_fa, p_target)
        dcf_index = int(np.argmin(costs))
        min_cost = float(costs[dcf_index])
        normalised, unnormalised, threshold = dcf_names(p_target)
        results[normalised] = min_cost / _dcf_normaliser(c_miss, c_fa, p_target)
        results[unnormalised] = min_cost
        results[threshold] = float(thresholds[dcf_index])
    if llr:
        results["Cllr"] = Cllr(scores[is_target], scores[~is_target])
        results["minCllr"] = minCllr(scores[is_target], scores[~is_target])
    results.update(
        {
            "p_targets": [float(p) for p in p_targets],
            "c_miss": float(c_miss),
            "c_fa": float(c_fa),
            "n_trials": int(scores.size),
            "n_positive": int(is_target.sum()),
            "n_negative": int((~is_target).sum()),
        }
    )
    return results
