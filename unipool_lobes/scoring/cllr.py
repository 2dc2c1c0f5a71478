"""The calibration cost of log-likelihood-ratio scores: Cllr and minCllr.

``Cllr`` and ``minCllr`` measure the calibration of log-likelihood-ratio
scores (Brummer and du Preez, 2006), in bits: the cost of the LLRs as they
are, and the cost after the best monotone recalibration (PAV,
``pav_llrs``).

Authors
 * unipool-sv developers 2026
"""

import math

import numpy as np

from unipool_lobes.scoring.error_rates import _score_pair


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
