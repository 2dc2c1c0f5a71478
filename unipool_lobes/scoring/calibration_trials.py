"""The QMF fitting trials: their seeded draw and their AS-norm scores.

``draw_calibration_trials`` draws the fitting trials from a training set
(first half target, second half non-target trials, as the LAP authors
draw them); ``as_norm_pairs`` gives the AS-norm scores of embedding pairs,
each trial's speakers left out of the cohort.

Authors
 * unipool-sv developers 2026
"""

import logging
import math
import random

import numpy as np
import torch
import torch.nn.functional as F

from unipool_lobes.scoring.score_norm import cohort_statistics, normalize_scores

logger = logging.getLogger(__name__)

_COSINE_EPS = 1e-6  # as unipool_lobes.scoring.score_norm


def draw_calibration_trials(speakers, n_trials=30000, seed=7):
    """Draws the QMF fitting trials from a training set, seeded.

    Trials ``0 .. ceil(n/2) - 1`` are target trials: a speaker drawn with
    ``choice`` among those with at least two utterances, then two
    different utterances of it with ``sample``. The rest are non-target
    trials: two different speakers with ``sample``, then one utterance of
    each with ``choice``. The generator is ``random.Random(seed)``; the
    authors' calls are the same, on Python's global generator seeded at 7
    (their target draw is among all speakers: the same draw when every
    speaker has two utterances, as in VoxCeleb2).

    Arguments
    ---------
    speakers : list of str
        The speaker of each training utterance (row).
    n_trials : int
        Number of trials (at least 2).
    seed : int
        Seed of the generator.

    Returns
    -------
    dict
        ``enrol`` and ``test`` ([T] int64 utterance rows), ``label`` ([T]
        int64, 1 then 0), ``exclude`` ([T, 2] int64 rows of the trial's
        speakers in ``speaker_ids``, -1 padding a target trial's second
        slot) and ``speaker_ids`` (the speakers in order of first
        appearance, the row order of ``speaker_mean_cohort``).

    Raises
    ------
    ValueError
        If fewer than two speakers, no speaker with two utterances, or
        fewer than two trials.

    Example
    -------
    >>> draw = draw_calibration_trials(["a", "a", "b", "c"], 4, seed=0)
    >>> draw["label"].tolist(), draw["enrol"][:2].tolist()
    ([1, 1, 0, 0], [1, 1])
    >>> draw["exclude"][0].tolist(), draw["speaker_ids"]
    ([0, -1], ['a', 'b', 'c'])
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, int):
        raise ValueError(f"n_trials must be an int, got {n_trials!r}")
    if n_trials < 2:
        raise ValueError(
            f"n_trials={n_trials}: need at least one target and one "
            "non-target trial"
        )
    utterances_of = {}
    for row, speaker in enumerate(speakers):
        utterances_of.setdefault(speaker, []).append(row)
    speaker_ids = list(utterances_of)
    if len(speaker_ids) < 2:
        raise ValueError(
            f"the training set has {len(speaker_ids)} speaker(s): "
            "non-target calibration trials need at least 2"
        )
    eligible = [s for s in speaker_ids if len(utterances_of[s]) >= 2]
    if not eligible:
        raise ValueError(
            "no training speaker has two utterances: target calibration "
            "trials need at least one"
        )
    if len(eligible) < len(speaker_ids):
        logger.info(
            "%d of %d training speakers have a single utterance: they give "
            "no target calibration trial",
            len(speaker_ids) - len(eligible),
            len(speaker_ids),
        )
    index_of = {speaker: i for i, speaker in enumerate(speaker_ids)}
    generator = random.Random(seed)
    n_target = math.ceil(n_trials / 2)
    enrol, test, exclude = [], [], []
    for _ in range(n_target):
        speaker = generator.choice(eligible)
        first, second = generator.sample(utterances_of[speaker], 2)
        enrol.append(first)
        test.append(second)
        exclude.append((index_of[speaker], -1))
    for _ in range(n_trials - n_target):
        speaker1, speaker2 = generator.sample(speaker_ids, 2)
        enrol.append(generator.choice(utterances_of[speaker1]))
        test.append(generator.choice(utterances_of[speaker2]))
        exclude.append((index_of[speaker1], index_of[speaker2]))
    return {
        "enrol": np.asarray(enrol, dtype=np.int64),
        "test": np.asarray(test, dtype=np.int64),
        "label": np.asarray(
            [1] * n_target + [0] * (n_trials - n_target), dtype=np.int64
        ),
        "exclude": np.asarray(exclude, dtype=np.int64),
        "speaker_ids": speaker_ids,
    }


def as_norm_pairs(
    enrol_embeddings,
    test_embeddings,
    cohort,
    top_k,
    exclude=None,
    chunk_size=None,
):
    """AS-norm scores of embedding pairs, optionally excluding cohort rows.

    The score of ``ScoreNormalizer(cohort, top_k, "s-norm")``: the cosine of
    the pair, normalised by the mean and unbiased std of each side's
    ``top_k`` highest cosines to the cohort, averaged over the two sides.
    With ``exclude``, both sides of trial ``i`` leave out the cohort rows
    ``exclude[i]`` (its speakers), as the authors' calibration trials do.
    The embeddings are used as given (subtract the cohort mean first).

    Arguments
    ---------
    enrol_embeddings : torch.Tensor
        The [T, E] enrolment embeddings (mean-subtracted).
    test_embeddings : torch.Tensor
        The [T, E] test embeddings (mean-subtracted).
    cohort : torch.Tensor
        The [S, E] cohort (``speaker_mean_cohort``'s).
    top_k : int
        Cohort scores kept per side.
    exclude : torch.Tensor or numpy.ndarray, optional
        [T, X] cohort rows to drop per trial (-1 pads).
    chunk_size : int, optional
        Rows scored at once (``cohort_statistics``).

    Returns
    -------
    torch.Tensor
        The [T] scores.

    Raises
    ------
    ValueError
        On mismatched shapes or a bad ``top_k``.

    Example
    -------
    >>> generator = torch.Generator().manual_seed(0)
    >>> cohort = torch.randn(20, 4, generator=generator)
    >>> pairs = torch.randn(2, 3, 4, generator=generator)
    >>> scores = as_norm_pairs(pairs[0], pairs[1], cohort, 5)
    >>> from unipool_lobes.scoring.score_norm import ScoreNormalizer
    >>> normalizer = ScoreNormalizer(cohort, 5, "s-norm")
    >>> table = torch.cat([pairs[0], pairs[1]])
    >>> ids = [str(i) for i in range(6)]
    >>> same = normalizer(table, ids, ids[:3], ids[3:])
    >>> torch.allclose(scores, same, atol=1e-6)
    True
    """
    enrol = torch.as_tensor(enrol_embeddings)
    test = torch.as_tensor(test_embeddings)
    if enrol.dim() != 2 or enrol.shape != test.shape:
        raise ValueError(
            f"enrol {tuple(enrol.shape)} and test {tuple(test.shape)} must "
            "be [T, E] of the same shape"
        )
    n_trials = enrol.shape[0]
    both = torch.cat([enrol, test])
    if exclude is not None:
        exclude = torch.as_tensor(np.asarray(exclude), dtype=torch.long)
        exclude = torch.cat([exclude, exclude])
    mean, std = cohort_statistics(
        both, cohort, top_k, chunk_size, exclude=exclude
    )
    unit = F.normalize(both.to(mean.dtype), dim=1, eps=_COSINE_EPS)
    raw = (unit[:n_trials] * unit[n_trials:]).sum(dim=1)
    rows = torch.arange(n_trials)
    return normalize_scores(raw, rows, rows + n_trials, mean, std, "s-norm")
