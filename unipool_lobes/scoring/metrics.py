"""Speaker-verification metrics: exact EER, minDCF, Cllr, trial scoring.

``verification_results`` gives every figure of a scored trial list (the
EER and both forms of the minimum detection cost, exactly SpeechBrain's,
and optionally ``Cllr`` / ``minCllr``); ``dcf_names``,
``reported_metrics`` and ``metrics_line`` name, pick and format them.

The other names of this module live in one module per job and are given
here too (``from unipool_lobes.scoring.metrics import EER`` keeps working):

* :mod:`unipool_lobes.scoring.error_rates`: ``EER``, ``minDCF``,
  ``normalized_minDCF`` (SpeechBrain's values in O(N log N)) and
  ``det_curve``;
* :mod:`unipool_lobes.scoring.cllr`: ``Cllr``, ``minCllr``, ``pav_llrs``;
* :mod:`unipool_lobes.scoring.trial_scoring`: ``cosine_score_trials``,
  ``window_pair_score_trials``, ``stack_embeddings``, ``trial_rows``;
* :mod:`unipool_lobes.scoring.score_files`: ``write_scores``,
  ``read_scores`` (``enrol test label score`` per line).

Authors
 * unipool-sv developers 2026
"""

import numpy as np

from unipool_lobes.scoring.cllr import Cllr, minCllr, pav_llrs
from unipool_lobes.scoring.error_rates import (
    EER,
    _as_labels,
    _as_score_array,
    _dcf_normaliser,
    _float32_rates,
    _speechbrain_dcf,
    _speechbrain_eer_index,
    det_curve,
    minDCF,
    normalized_minDCF,
)
from unipool_lobes.scoring.score_files import read_scores, write_scores
from unipool_lobes.scoring.trial_scoring import (
    cosine_score_trials,
    stack_embeddings,
    trial_rows,
    window_pair_score_trials,
)

__all__ = [
    "CLLR_KEYS",
    "EER",
    "Cllr",
    "cosine_score_trials",
    "dcf_names",
    "det_curve",
    "metrics_line",
    "minCllr",
    "minDCF",
    "normalized_minDCF",
    "pav_llrs",
    "read_scores",
    "reported_metrics",
    "stack_embeddings",
    "trial_rows",
    "verification_results",
    "window_pair_score_trials",
    "write_scores",
]

# The calibration fields of ``verification_results(..., llr=True)``.
CLLR_KEYS = ("Cllr", "minCllr")


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
