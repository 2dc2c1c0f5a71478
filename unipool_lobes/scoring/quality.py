"""The nine QMF quality features of a trial, in the authors' order.

The AS-norm score, the log durations of the two utterances, then the L1
and L2 norms and the population standard deviation of the two raw
embeddings (``FEATURE_NAMES``), the input of the QMF calibration
(:mod:`unipool_lobes.scoring.qmf`).

Authors
 * unipool-sv developers 2026
"""

import numpy as np
import torch

# The authors' feature order (qmf_calibration.py, qmf_input).
FEATURE_NAMES = (
    "as_norm_score",
    "log_duration_enrol",
    "log_duration_test",
    "l1_norm_enrol",
    "l2_norm_enrol",
    "l1_norm_test",
    "l2_norm_test",
    "std_enrol",
    "std_test",
)


def quality_features(
    as_norm_scores,
    enrol_embeddings,
    test_embeddings,
    enrol_durations,
    test_durations,
):
    """The nine QMF quality features of trials, in the authors' order.

    ``as_norm_score``, ``log(duration)`` of the enrolment and of the test
    utterance, then the L1 and L2 norm of the raw enrolment embedding, the
    same of the raw test embedding, then the population standard deviation
    (divisor E) over the dimensions of each raw embedding. Float64; no
    standardisation.

    Arguments
    ---------
    as_norm_scores : torch.Tensor or numpy.ndarray
        The [T] AS-norm scores.
    enrol_embeddings : torch.Tensor or numpy.ndarray
        The [T, E] raw (not mean-subtracted) enrolment embeddings.
    test_embeddings : torch.Tensor or numpy.ndarray
        The [T, E] raw test embeddings.
    enrol_durations : sequence of float
        The [T] enrolment durations in seconds (positive).
    test_durations : sequence of float
        The [T] test durations in seconds (positive).

    Returns
    -------
    numpy.ndarray
        The [T, 9] float64 features, columns as ``FEATURE_NAMES``.

    Raises
    ------
    ValueError
        On mismatched shapes or a non-positive or non-finite duration.

    Example
    -------
    >>> features = quality_features(
    ...     [2.0], [[3.0, -4.0]], [[1.0, 1.0]], [np.e], [1.0]
    ... )
    >>> features.round(4).tolist()
    [[2.0, 1.0, 0.0, 7.0, 5.0, 2.0, 1.4142, 3.5, 0.0]]
    """
    scores = _as_float64(as_norm_scores).reshape(-1)
    enrol = _as_float64(enrol_embeddings)
    test = _as_float64(test_embeddings)
    n_trials = scores.size
    if enrol.ndim != 2 or enrol.shape != test.shape:
        raise ValueError(
            f"enrol {enrol.shape} and test {test.shape} embeddings must be "
            "[T, E] of the same shape"
        )
    durations = (
        _check_durations(enrol_durations, "enrol_durations", n_trials),
        _check_durations(test_durations, "test_durations", n_trials),
    )
    if enrol.shape[0] != n_trials:
        raise ValueError(f"{enrol.shape[0]} embedding pairs, {n_trials} scores")
    return _assemble_features(
        scores, embedding_qualities(enrol), embedding_qualities(test), durations
    )


def embedding_qualities(embeddings):
    """The per-embedding QMF features: L1 norm, L2 norm, population std.

    Arguments
    ---------
    embeddings : torch.Tensor or numpy.ndarray
        The [N, E] raw embeddings.

    Returns
    -------
    numpy.ndarray
        The [N, 3] float64 L1 norm, L2 norm and standard deviation over
        the E dimensions (divisor E, numpy's ``std``) of each row.

    Raises
    ------
    ValueError
        If the embeddings are not [N, E].

    Example
    -------
    >>> embedding_qualities([[3.0, -4.0]]).tolist()
    [[7.0, 5.0, 3.5]]
    """
    rows = _as_float64(embeddings)
    if rows.ndim != 2:
        raise ValueError(f"embeddings must be [N, E], got shape {rows.shape}")
    return np.stack(
        [
            np.abs(rows).sum(axis=1),
            np.sqrt((rows**2).sum(axis=1)),
            rows.std(axis=1),
        ],
        axis=1,
    )


def _assemble_features(scores, enrol_qualities, test_qualities, durations):
    """Stacks the nine features in the authors' order."""
    return np.stack(
        [
            scores,
            np.log(durations[0]),
            np.log(durations[1]),
            enrol_qualities[:, 0],
            enrol_qualities[:, 1],
            test_qualities[:, 0],
            test_qualities[:, 1],
            enrol_qualities[:, 2],
            test_qualities[:, 2],
        ],
        axis=1,
    )


def _check_durations(values, name, n_trials):
    """Float64 durations, all positive and finite, or a ValueError."""
    values = _as_float64(values).reshape(-1)
    if values.size != n_trials:
        raise ValueError(f"{values.size} {name} for {n_trials} scores")
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}[{first}] is {values[first]!r}: durations must be "
            "positive seconds (their log is a feature)"
        )
    return values


def _as_float64(values):
    """A float64 numpy copy of a tensor, an array or a sequence."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().to(torch.float64).numpy()
    return np.array(values, dtype=np.float64)
