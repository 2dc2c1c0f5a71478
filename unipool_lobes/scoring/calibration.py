"""The LAP authors' scoring back-end: mean subtraction, AS-norm and QMF.

Four scoring stages, each on the one before (spec
``lap_pipeline.md`` section 7, the authors' ``src/evaluate/``):

* ``cosine``: the cosine of the two raw embeddings of a trial;
* ``mean_subtracted``: the cosine once the cohort mean (the mean of all
  training-utterance embeddings) is subtracted from both sides;
* ``as_norm``: adaptive s-norm of that score, top-k (600) over a cohort of
  one centred mean vector per training speaker
  (``unipool_lobes.scoring.score_norm``);
* ``qmf``: a quality-measure function, a logistic regression over nine
  quality features of a trial (``FEATURE_NAMES``: the AS-norm score, the
  log durations, the L1 and L2 norms and the population standard
  deviation of the two raw embeddings, in the authors' order), fitted on
  trials drawn from the training set. It gives calibrated log-likelihood
  ratios.

Fitting trials (``draw_calibration_trials``): the first half are target
trials (a random speaker, two different random utterances of it), the
second half non-target trials (two different random speakers, one
utterance each); each trial's speakers are removed from the AS-norm cohort
while its score is computed. The authors draw them with Python's global
``random`` seeded at 7; here a ``random.Random(seed)`` draws the same calls
in the same order (speakers in order of first appearance), so the draws
match theirs only if their generator is in the same state and the
speaker and utterance orders agree: bit parity is not claimed.

The fitted model is kept as plain JSON (``QualityCalibration``), never a
pickle: LLRs are recomputed from the stored coefficients, so a loaded file
gives identical outputs. The cohort is a tensor file loaded with
``weights_only=True`` (``ScoreBackend``); both live in a model folder as
``score_backend.pt`` and ``calibration.json``.

This module gives ``evaluate_backend_stages`` (fit and score all four
stages); the parts live in one module per job and their names are given
here too (``from unipool_lobes.scoring.calibration import ScoreBackend``
keeps working): :mod:`unipool_lobes.scoring.quality` (the features),
:mod:`unipool_lobes.scoring.calibration_trials` (the fitting-trial draw,
``as_norm_pairs``), :mod:`unipool_lobes.scoring.qmf`
(``QualityCalibration``, ``fit_calibration``) and
:mod:`unipool_lobes.scoring.score_backend` (``ScoreBackend``,
``save_score_backend``, ``load_score_backend``).

Authors
 * unipool-sv developers 2026
"""

import logging

from unipool_lobes.scoring.calibration_trials import (
    as_norm_pairs,
    draw_calibration_trials,
)
from unipool_lobes.scoring.metrics import verification_results
from unipool_lobes.scoring.qmf import (
    CALIBRATION_FORMAT,
    CALIBRATION_VERSION,
    QualityCalibration,
    ScoreBackendError,
    fit_calibration,
)
from unipool_lobes.scoring.quality import (
    FEATURE_NAMES,
    embedding_qualities,
    quality_features,
)
from unipool_lobes.scoring.score_backend import (
    BACKEND_FILES,
    CALIBRATION_FILE,
    SCORE_BACKEND_FILE,
    ScoreBackend,
    load_score_backend,
    save_score_backend,
)
from unipool_lobes.scoring.score_norm import speaker_mean_cohort

__all__ = [
    "BACKEND_FILES",
    "CALIBRATION_FILE",
    "CALIBRATION_FORMAT",
    "CALIBRATION_VERSION",
    "FEATURE_NAMES",
    "SCORE_BACKEND_FILE",
    "STAGES",
    "QualityCalibration",
    "ScoreBackend",
    "ScoreBackendError",
    "as_norm_pairs",
    "draw_calibration_trials",
    "embedding_qualities",
    "evaluate_backend_stages",
    "fit_calibration",
    "load_score_backend",
    "quality_features",
    "save_score_backend",
]

logger = logging.getLogger(__name__)

STAGES = ("cosine", "mean_subtracted", "as_norm", "qmf")


def evaluate_backend_stages(
    train_embeddings,
    train_speakers,
    train_durations,
    eval_embeddings,
    eval_ids,
    eval_durations,
    trials,
    top_k=600,
    n_calibration_trials=30000,
    seed=7,
    p_targets=(0.01, 0.05),
):
    """Scores a trial list through the four back-end stages, fitting QMF.

    Builds the speaker-mean cohort from the training embeddings, fits the
    QMF on ``n_calibration_trials`` training trials, then scores the
    trials with the raw cosine, the mean-subtracted cosine, AS-norm and the
    QMF. Every stage's results hold EER, minDCF at each prior, ``Cllr``
    and ``minCllr``; ``Cllr`` takes the stage's scores as LLRs, which only
    the ``qmf`` stage's are (for the others it is the cost of using the raw
    score as an LLR), while ``minCllr`` is meaningful for all. A ``top_k``
    above ``S - 2`` (S training speakers; non-target fitting trials remove
    two) is lowered to ``S - 2`` with a warning, and recorded.

    Arguments
    ---------
    train_embeddings : torch.Tensor
        The [U, E] raw full-utterance embeddings of the training set.
    train_speakers : list of str
        The U speaker ids.
    train_durations : sequence of float
        The U durations in seconds.
    eval_embeddings : torch.Tensor
        The [N, E] raw embeddings of the evaluated utterances.
    eval_ids : list of str
        Their N ids.
    eval_durations : sequence of float
        Their N durations in seconds.
    trials : dict
        ``enrol``, ``test`` (utterance ids) and ``label`` lists
        (``unipool_lobes.scoring.trials.read_trials``).
    top_k : int
        Cohort scores kept per side (the authors': 600).
    n_calibration_trials : int
        QMF fitting trials (the authors': 30,000).
    seed : int
        Seed of the fitting-trial draw and of the regression.
    p_targets : sequence of float
        Priors of the minDCF operating points.

    Returns
    -------
    stages : dict
        ``cosine``, ``mean_subtracted``, ``as_norm``, ``qmf`` (in order),
        each ``dict(scores=Tensor[N], results=dict)``; ``qmf`` also has
        ``probability``, and its scores are the calibrated LLRs (nats).
    artefacts : dict
        ``cohort_mean`` ([E]), ``cohort`` ([S, E]), ``calibration`` (the
        JSON content) and ``backend`` (the ``ScoreBackend``, whose
        ``save(folder)`` writes the model-folder files).

    Raises
    ------
    ValueError
        On mismatched inputs, too few training speakers or a bad trial.
    KeyError
        If a trial names an id not in ``eval_ids``.

    Example
    -------
    >>> import torch
    >>> generator = torch.Generator().manual_seed(0)
    >>> def population(n_speakers, prefix):
    ...     centres = torch.randn(n_speakers, 8, generator=generator)
    ...     table = centres.repeat_interleave(4, dim=0)
    ...     table = table + 0.5 * torch.randn(table.shape, generator=generator)
    ...     return table, [f"{prefix}{i // 4}" for i in range(len(table))]
    >>> train, speakers = population(12, "t")
    >>> test, test_speakers = population(4, "e")
    >>> ids = [f"u{i}" for i in range(16)]
    >>> trials = {
    ...     "enrol": ids[:8],
    ...     "test": ids[8:],
    ...     "label": [
    ...         int(test_speakers[i] == test_speakers[i + 8]) for i in range(8)
    ...     ],
    ... }
    >>> trials["enrol"][0], trials["test"][0] = "u0", "u1"
    >>> trials["label"][0] = 1
    >>> stages, artefacts = evaluate_backend_stages(
    ...     train,
    ...     speakers,
    ...     [3.0] * 48,
    ...     test,
    ...     ids,
    ...     [3.0] * 16,
    ...     trials,
    ...     top_k=5,
    ...     n_calibration_trials=200,
    ... )
    >>> list(stages), artefacts["cohort"].shape
    (['cosine', 'mean_subtracted', 'as_norm', 'qmf'], torch.Size([12, 8]))
    >>> "minCllr" in stages["qmf"]["results"]
    True
    """
    speaker_ids, cohort, cohort_mean = speaker_mean_cohort(
        train_embeddings, train_speakers
    )
    if len(speaker_ids) < 4:
        raise ValueError(
            f"{len(speaker_ids)} training speakers: AS-norm with calibration "
            "trials needs at least 4 (two left out, two for a std)"
        )
    if top_k > len(speaker_ids) - 2:
        logger.warning(
            "top_k=%d exceeds the %d training speakers less the 2 left out "
            "of non-target calibration trials: using top_k=%d",
            top_k,
            len(speaker_ids),
            len(speaker_ids) - 2,
        )
        top_k = len(speaker_ids) - 2
    calibration = fit_calibration(
        train_embeddings,
        train_speakers,
        train_durations,
        cohort_mean,
        cohort,
        top_k=top_k,
        n_trials=n_calibration_trials,
        seed=seed,
    )
    backend = ScoreBackend(cohort_mean, cohort, calibration)
    scored = backend.score(
        eval_embeddings,
        list(eval_ids),
        eval_durations,
        list(trials["enrol"]),
        list(trials["test"]),
    )
    stages = {}
    for name, key in zip(
        STAGES, ("cosine", "mean_subtracted", "as_norm", "llr"), strict=True
    ):
        scores = scored[key]
        stages[name] = {
            "scores": scores,
            "results": verification_results(
                trials["label"], scores, p_targets=p_targets, llr=True
            ),
        }
    stages["qmf"]["probability"] = scored["probability"]
    artefacts = {
        "cohort_mean": cohort_mean,
        "cohort": cohort,
        "calibration": calibration.to_dict(),
        "backend": backend,
    }
    return stages, artefacts
