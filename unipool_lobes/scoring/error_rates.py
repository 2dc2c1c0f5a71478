"""Exact, fast EER, minDCF and DET points, as SpeechBrain computes them.

``EER`` and ``minDCF`` return exactly what
``speechbrain.utils.metric_stats.EER`` / ``minDCF`` return (same candidate
thresholds, same float32 rates, same tie-breaking, so the same value *and*
threshold), but in O(N log N) time and O(N) memory: one sort and a binary
search replace SpeechBrain's Python loop over thresholds (EER, O(N^2) time)
and its [thresholds x trials] matrices (minDCF, O(N^2) memory). A
Vox1-H-sized list (552,536 trials) takes well under a second.
``normalized_minDCF`` is the NIST / Kaldi form and ``det_curve`` gives every
operating point, for a DET plot.

Authors
 * unipool-sv developers 2026
"""

import numpy as np
import torch

# Two |FAR - FRR| values closer than this (relative) may swap order between
# float32 and float64; SpeechBrain's scan compares across the two precisions,
# so all values below the first wider jump are replayed one by one.
_RELATIVE_GAP = 1e-5

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


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
