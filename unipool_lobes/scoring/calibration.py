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

Authors
 * unipool-sv developers 2026
"""

import json
import logging
import math
import pathlib
import random

import numpy as np
import torch
import torch.nn.functional as F

from unipool_lobes.scoring.metrics import (
    cosine_score_trials,
    trial_rows,
    verification_results,
)
from unipool_lobes.scoring.score_norm import (
    ScoreNormalizer,
    cohort_statistics,
    normalize_scores,
    speaker_mean_cohort,
    subtract_mean,
)
from unipool_lobes.utils.safe_io import atomic_open, write_text_atomic

logger = logging.getLogger(__name__)

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
STAGES = ("cosine", "mean_subtracted", "as_norm", "qmf")
SCORE_BACKEND_FILE = "score_backend.pt"
CALIBRATION_FILE = "calibration.json"
BACKEND_FILES = (SCORE_BACKEND_FILE, CALIBRATION_FILE)
CALIBRATION_FORMAT = "unipool-sv QMF calibration"
CALIBRATION_VERSION = 1
_COSINE_EPS = 1e-6  # as unipool_lobes.scoring.score_norm


class ScoreBackendError(ValueError):
    """A back-end file (cohort or calibration) that is corrupt or does not
    fit: the message names the file."""


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
    ...     [2.0], [[3.0, -4.0]], [[1.0, 1.0]], [math.e], [1.0]
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


class QualityCalibration:
    """A fitted QMF: logistic regression over ``FEATURE_NAMES``.

    The model's log-odds ``z = features @ coefficients + intercept`` are
    posterior log-odds at the fitting trials' target proportion; the
    calibrated log-likelihood ratio (nats) is ``z - prior_log_odds`` with
    ``prior_log_odds = log(n_target / n_non_target)`` of the fitting
    trials: 0 for the authors' balanced 15,000 + 15,000, where LLR and
    log-odds coincide. The probability is ``sigmoid(z)``, the authors'
    ``predict_proba[:, 1]`` (their reported score).

    Arguments
    ---------
    coefficients : sequence of float
        One weight per feature.
    intercept : float
        The bias.
    prior_log_odds : float
        ``log(n_target / n_non_target)`` of the fitting trials.
    feature_names : sequence of str
        Must be ``FEATURE_NAMES``.
    info : dict, optional
        JSON-ready facts of the fit (top_k, cohort size, seed, trial
        counts...), stored with it.

    Raises
    ------
    ValueError
        On a wrong number of coefficients, non-finite values or other
        feature names.

    Example
    -------
    >>> calibration = QualityCalibration([1.0] + [0.0] * 8, -2.0)
    >>> features = np.zeros((1, 9))
    >>> features[0, 0] = 2.0
    >>> calibration.llr(features).tolist(), calibration.probability(
    ...     features
    ... ).tolist()
    ([0.0], [0.5])
    """

    def __init__(
        self,
        coefficients,
        intercept,
        prior_log_odds=0.0,
        feature_names=FEATURE_NAMES,
        info=None,
    ):
        if tuple(feature_names) != FEATURE_NAMES:
            raise ValueError(
                f"feature names {list(feature_names)} are not "
                f"{list(FEATURE_NAMES)}"
            )
        coefficients = np.asarray(coefficients, dtype=np.float64).reshape(-1)
        if coefficients.size != len(FEATURE_NAMES):
            raise ValueError(
                f"{coefficients.size} coefficients for "
                f"{len(FEATURE_NAMES)} features"
            )
        values = [*coefficients.tolist(), intercept, prior_log_odds]
        if not all(math.isfinite(float(v)) for v in values):
            raise ValueError("calibration coefficients must be finite")
        self.coefficients = coefficients
        self.intercept = float(intercept)
        self.prior_log_odds = float(prior_log_odds)
        self.info = dict(info or {})

    @classmethod
    def fit(cls, features, labels, seed=7, info=None):
        """Fits the authors' logistic regression on fitting trials.

        ``sklearn.linear_model.LogisticRegression(solver="liblinear",
        random_state=seed)``, everything else at the defaults (L2, C=1, an
        intercept that liblinear also penalises, 100 iterations), on the
        unstandardised features.

        Arguments
        ---------
        features : numpy.ndarray
            The [T, 9] features (``quality_features``).
        labels : numpy.ndarray
            The [T] 0/1 labels.
        seed : int
            ``random_state`` (the authors': 7).
        info : dict, optional
            Facts to store with the fit.

        Returns
        -------
        QualityCalibration
            The fitted calibration.

        Raises
        ------
        ValueError
            If a class is missing or the shapes are wrong.

        Example
        -------
        >>> rng = np.random.default_rng(0)
        >>> labels = np.repeat([1, 0], 50)
        >>> features = rng.normal(size=(100, 9))
        >>> features[:, 0] += 3 * labels
        >>> calibration = QualityCalibration.fit(features, labels)
        >>> bool(calibration.coefficients[0] > 1)
        True
        """
        from sklearn.linear_model import LogisticRegression

        features = np.asarray(features, dtype=np.float64)
        labels = np.asarray(labels).reshape(-1)
        if features.ndim != 2 or features.shape != (
            labels.size,
            len(FEATURE_NAMES),
        ):
            raise ValueError(
                f"features {features.shape} must be [{labels.size}, "
                f"{len(FEATURE_NAMES)}]"
            )
        n_target = int((labels == 1).sum())
        n_non_target = int((labels == 0).sum())
        if (
            n_target == 0
            or n_non_target == 0
            or n_target + n_non_target != (labels.size)
        ):
            raise ValueError(
                "calibration labels must be 0/1 with both classes present"
            )
        model = LogisticRegression(solver="liblinear", random_state=seed)
        model.fit(features, labels)
        info = dict(info or {})
        info.update(
            solver="liblinear",
            C=float(model.C),
            random_state=seed,
            n_trials=int(labels.size),
            n_target=n_target,
            n_non_target=n_non_target,
            n_iter=int(np.max(model.n_iter_)),
            max_iter=int(model.max_iter),
        )
        return cls(
            model.coef_[0],
            float(model.intercept_[0]),
            prior_log_odds=math.log(n_target / n_non_target),
            info=info,
        )

    def log_odds(self, features):
        """The model's posterior log-odds of the features.

        Arguments
        ---------
        features : numpy.ndarray
            The [T, 9] features.

        Returns
        -------
        numpy.ndarray
            The [T] float64 log-odds (sklearn's ``decision_function``).

        Example
        -------
        >>> QualityCalibration([0.5] * 9, 1.0).log_odds(np.ones((1, 9)))
        array([5.5])
        """
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(FEATURE_NAMES):
            raise ValueError(
                f"features must be [T, {len(FEATURE_NAMES)}], got "
                f"{features.shape}"
            )
        return features @ self.coefficients + self.intercept

    def llr(self, features):
        """The calibrated log-likelihood ratios (nats) of the features.

        Arguments
        ---------
        features : numpy.ndarray
            The [T, 9] features.

        Returns
        -------
        numpy.ndarray
            The [T] float64 LLRs: log-odds less ``prior_log_odds``.

        Example
        -------
        >>> calibration = QualityCalibration([0.0] * 9, 1.0, 1.0)
        >>> calibration.llr(np.ones((2, 9))).tolist()
        [0.0, 0.0]
        """
        return self.log_odds(features) - self.prior_log_odds

    def probability(self, features):
        """The target probability at the fitting prior (``predict_proba``).

        Arguments
        ---------
        features : numpy.ndarray
            The [T, 9] features.

        Returns
        -------
        numpy.ndarray
            The [T] float64 probabilities ``sigmoid(log_odds)``.

        Example
        -------
        >>> calibration = QualityCalibration([0.0] * 9, 0.0)
        >>> calibration.probability(np.ones((1, 9))).tolist()
        [0.5]
        """
        return _sigmoid(self.log_odds(features))

    def to_dict(self):
        """The JSON content of the calibration.

        Returns
        -------
        dict
            ``format``, ``version``, ``feature_names``, ``coefficients``,
            ``intercept``, ``prior_log_odds`` and the ``info`` facts.

        Example
        -------
        >>> content = QualityCalibration([0.0] * 9, 0.5).to_dict()
        >>> content["intercept"], len(content["coefficients"])
        (0.5, 9)
        """
        content = {
            "format": CALIBRATION_FORMAT,
            "version": CALIBRATION_VERSION,
            "feature_names": list(FEATURE_NAMES),
            "coefficients": self.coefficients.tolist(),
            "intercept": self.intercept,
            "prior_log_odds": self.prior_log_odds,
            "llr": "features @ coefficients + intercept - prior_log_odds "
            "(nats); probability = sigmoid(features @ coefficients + "
            "intercept)",
        }
        content.update(self.info)
        return content

    @classmethod
    def from_dict(cls, content, where="calibration"):
        """Rebuilds a calibration from its JSON content, checked.

        Arguments
        ---------
        content : dict
            As ``to_dict`` gives it.
        where : str
            Names the source in errors (a file name).

        Returns
        -------
        QualityCalibration
            The calibration.

        Raises
        ------
        ScoreBackendError
            Naming ``where``, if the content is not a valid calibration.

        Example
        -------
        >>> content = QualityCalibration([0.0] * 9, 0.5).to_dict()
        >>> QualityCalibration.from_dict(content).intercept
        0.5
        >>> try:
        ...     QualityCalibration.from_dict({"format": "x"}, "c.json")
        ... except ScoreBackendError as error:
        ...     print(str(error)[:38])
        c.json: not a unipool-sv QMF calibrati
        """
        if not isinstance(content, dict):
            raise ScoreBackendError(f"{where}: not a JSON object")
        if content.get("format") != CALIBRATION_FORMAT:
            raise ScoreBackendError(
                f"{where}: not a {CALIBRATION_FORMAT} file (format "
                f"{content.get('format')!r})"
            )
        if content.get("version") != CALIBRATION_VERSION:
            raise ScoreBackendError(
                f"{where}: calibration version {content.get('version')!r}, "
                f"this code reads version {CALIBRATION_VERSION}"
            )
        try:
            coefficients = [float(v) for v in content["coefficients"]]
            calibration = cls(
                coefficients,
                float(content["intercept"]),
                float(content["prior_log_odds"]),
                content["feature_names"],
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ScoreBackendError(
                f"{where}: invalid calibration ({error})"
            ) from None
        reserved = set(calibration.to_dict())
        calibration.info = {
            key: value for key, value in content.items() if key not in reserved
        }
        return calibration

    def save(self, path):
        """Writes the calibration as JSON, atomically.

        Arguments
        ---------
        path : str or os.PathLike
            The file (e.g. ``calibration.json``).

        Example
        -------
        >>> path = getfixture("tmp_path") / "calibration.json"
        >>> QualityCalibration([0.25] * 9, 0.5).save(path)
        >>> QualityCalibration.load(path).coefficients.tolist()[0]
        0.25
        """
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path):
        """Reads a calibration written by ``save``.

        Arguments
        ---------
        path : str or os.PathLike
            The JSON file.

        Returns
        -------
        QualityCalibration
            The calibration (identical outputs to the saved one).

        Raises
        ------
        FileNotFoundError
            If the file is missing.
        ScoreBackendError
            Naming the file, if it is not valid JSON or not a calibration.

        Example
        -------
        >>> path = getfixture("tmp_path") / "bad.json"
        >>> _ = path.write_text("{not json")
        >>> try:
        ...     QualityCalibration.load(path)
        ... except ScoreBackendError as error:
        ...     print(str(error).endswith("bad.json: not valid JSON"))
        True
        """
        path = pathlib.Path(path)
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except (UnicodeDecodeError, ValueError):
            raise ScoreBackendError(f"{path}: not valid JSON") from None
        return cls.from_dict(content, str(path))


def _sigmoid(values):
    """The logistic function, without overflow warnings."""
    out = np.empty_like(values)
    positive = values >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-values[positive]))
    exp = np.exp(values[~positive])
    out[~positive] = exp / (1.0 + exp)
    return out


def fit_calibration(
    train_embeddings,
    train_speakers,
    train_durations,
    cohort_mean,
    cohort,
    top_k=600,
    n_trials=30000,
    seed=7,
):
    """Draws the fitting trials and fits the QMF on the training set.

    Arguments
    ---------
    train_embeddings : torch.Tensor
        The [U, E] raw training-utterance embeddings.
    train_speakers : list of str
        The U speakers.
    train_durations : sequence of float
        The U durations in seconds.
    cohort_mean : torch.Tensor
        The [E] cohort mean (``speaker_mean_cohort``).
    cohort : torch.Tensor
        The [S, E] cohort, rows in order of first appearance of the
        speakers (``speaker_mean_cohort``).
    top_k : int
        Cohort scores kept per side (at most S - 2).
    n_trials : int
        Fitting trials (half target).
    seed : int
        Seed of the draw and ``random_state`` of the regression.

    Returns
    -------
    QualityCalibration
        The fitted calibration; its info records ``top_k``,
        ``cohort_size``, ``seed`` and the trial counts.

    Raises
    ------
    ValueError
        On mismatched inputs or too few speakers.

    Example
    -------
    >>> generator = torch.Generator().manual_seed(0)
    >>> speakers = [str(i // 3) for i in range(30)]
    >>> table = torch.randn(10, 8, generator=generator).repeat_interleave(
    ...     3, dim=0
    ... ) + 0.3 * torch.randn(30, 8, generator=generator)
    >>> _, cohort, mean = speaker_mean_cohort(table, speakers)
    >>> calibration = fit_calibration(
    ...     table, speakers, [2.0] * 30, mean, cohort, top_k=4, n_trials=40
    ... )
    >>> calibration.info["n_target"], calibration.info["top_k"]
    (20, 4)
    """
    train_embeddings = torch.as_tensor(train_embeddings)
    durations = _as_float64(train_durations).reshape(-1)
    if not (
        train_embeddings.dim() == 2
        and train_embeddings.shape[0] == len(train_speakers) == durations.size
    ):
        raise ValueError(
            f"{tuple(train_embeddings.shape)} training embeddings, "
            f"{len(train_speakers)} speakers and {durations.size} durations "
            "do not match"
        )
    draw = draw_calibration_trials(train_speakers, n_trials, seed)
    if len(draw["speaker_ids"]) != cohort.shape[0]:
        raise ValueError(
            f"the cohort has {cohort.shape[0]} rows for "
            f"{len(draw['speaker_ids'])} training speakers"
        )
    enrol = torch.as_tensor(draw["enrol"])
    test = torch.as_tensor(draw["test"])
    centred = subtract_mean(train_embeddings, cohort_mean)
    scores = as_norm_pairs(
        centred[enrol], centred[test], cohort, top_k, draw["exclude"]
    )
    features = quality_features(
        scores,
        train_embeddings[enrol],
        train_embeddings[test],
        durations[draw["enrol"]],
        durations[draw["test"]],
    )
    calibration = QualityCalibration.fit(
        features,
        draw["label"],
        seed=seed,
        info={
            "top_k": int(top_k),
            "cohort_size": int(cohort.shape[0]),
            "seed": seed,
            "draw": "random.Random(seed): ceil(n/2) target trials "
            "(choice of a speaker with 2+ utterances, sample of 2 of its "
            "utterances), then non-target (sample of 2 speakers, choice of "
            "one utterance each); trial speakers left out of the cohort",
        },
    )
    if calibration.info["n_iter"] >= calibration.info["max_iter"]:
        logger.warning(
            "the QMF logistic regression stopped at max_iter=%d (as the "
            "authors' may: unstandardised features)",
            calibration.info["max_iter"],
        )
    return calibration


class ScoreBackend:
    """The stored scoring back-end of a model: cohort plus calibration.

    Arguments
    ---------
    cohort_mean : torch.Tensor
        The [E] mean of the training-utterance embeddings.
    cohort : torch.Tensor
        The [S, E] centred speaker-mean cohort.
    calibration : QualityCalibration
        The fitted QMF (its info gives ``top_k``).
    where : str
        Names the source in errors (the cohort file).

    Raises
    ------
    ScoreBackendError
        If the shapes or the recorded cohort size do not fit.

    Example
    -------
    >>> generator = torch.Generator().manual_seed(0)
    >>> calibration = QualityCalibration(
    ...     [1.0] + [0.0] * 8, 0.0, info={"top_k": 3, "cohort_size": 5}
    ... )
    >>> backend = ScoreBackend(
    ...     torch.zeros(4), torch.randn(5, 4, generator=generator),
    ...     calibration,
    ... )
    >>> table = torch.randn(2, 4, generator=generator)
    >>> out = backend.score(table, ["a", "b"], [1.0, 2.0], ["a"], ["b"])
    >>> sorted(out)
    ['as_norm', 'cosine', 'llr', 'mean_subtracted', 'probability']
    """

    def __init__(self, cohort_mean, cohort, calibration, where="backend"):
        cohort_mean = torch.as_tensor(cohort_mean)
        cohort = torch.as_tensor(cohort)
        if cohort.dim() != 2 or cohort_mean.shape != (cohort.shape[1],):
            raise ScoreBackendError(
                f"{where}: cohort {tuple(cohort.shape)} and cohort_mean "
                f"{tuple(cohort_mean.shape)} must be [S, E] and [E]"
            )
        info = calibration.info
        top_k = info.get("top_k")
        if not isinstance(top_k, int) or not 2 <= top_k <= cohort.shape[0]:
            raise ScoreBackendError(
                f"{where}: the calibration's top_k {top_k!r} does not fit a "
                f"cohort of {cohort.shape[0]}"
            )
        if info.get("cohort_size", cohort.shape[0]) != cohort.shape[0]:
            raise ScoreBackendError(
                f"{where}: the calibration was fitted with a cohort of "
                f"{info['cohort_size']}, the cohort file has "
                f"{cohort.shape[0]}"
            )
        self.cohort_mean = cohort_mean
        self.cohort = cohort
        self.calibration = calibration
        self.top_k = top_k

    def score(self, embeddings, ids, durations, enrol_ids, test_ids):
        """Scores trials through every stage of the back-end.

        Arguments
        ---------
        embeddings : torch.Tensor
            The [N, E] raw embeddings.
        ids : list of str
            The N ids naming the rows.
        durations : sequence of float
            The N durations in seconds.
        enrol_ids : list of str
            The enrolment id of each trial.
        test_ids : list of str
            The test id of each trial.

        Returns
        -------
        dict
            ``cosine``, ``mean_subtracted``, ``as_norm`` ([T] tensors),
            ``llr`` and ``probability`` ([T] float64 tensors).

        Raises
        ------
        KeyError
            If a trial names an unknown id.
        ValueError
            On mismatched shapes.

        Example
        -------
        >>> calibration = QualityCalibration(
        ...     [1.0] + [0.0] * 8, 0.0, info={"top_k": 2}
        ... )
        >>> backend = ScoreBackend(torch.zeros(2), torch.eye(2), calibration)
        >>> table = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> out = backend.score(table, ["a", "b"], [1.0, 1.0], ["a"], ["b"])
        >>> round(out["llr"].item(), 4), round(out["as_norm"].item(), 4)
        (-1.4142, -1.4142)
        """
        embeddings = torch.as_tensor(embeddings)
        row_of = trial_rows(ids, embeddings.shape[0], enrol_ids, test_ids)
        cosine = cosine_score_trials(embeddings, ids, enrol_ids, test_ids)
        centred = subtract_mean(embeddings, self.cohort_mean)
        mean_subtracted = cosine_score_trials(centred, ids, enrol_ids, test_ids)
        normalizer = ScoreNormalizer(self.cohort, self.top_k, "s-norm")
        as_norm = normalizer(
            centred, ids, enrol_ids, test_ids, raw_scores=mean_subtracted
        )
        enrol = np.asarray([row_of[i] for i in enrol_ids], dtype=np.int64)
        test = np.asarray([row_of[i] for i in test_ids], dtype=np.int64)
        durations = _check_durations(durations, "durations", len(ids))
        qualities = embedding_qualities(embeddings)  # once per utterance
        features = _assemble_features(
            _as_float64(as_norm),
            qualities[enrol],
            qualities[test],
            (durations[enrol], durations[test]),
        )
        return {
            "cosine": cosine,
            "mean_subtracted": mean_subtracted,
            "as_norm": as_norm,
            "llr": torch.from_numpy(self.calibration.llr(features)),
            "probability": torch.from_numpy(
                self.calibration.probability(features)
            ),
        }

    def score_pairs(
        self, enrol_embeddings, test_embeddings, enrol_durations, test_durations
    ):
        """Calibrated LLRs and probabilities of embedding pairs.

        Arguments
        ---------
        enrol_embeddings : torch.Tensor
            The [T, E] raw enrolment embeddings.
        test_embeddings : torch.Tensor
            The [T, E] raw test embeddings.
        enrol_durations : sequence of float
            The [T] enrolment durations in seconds.
        test_durations : sequence of float
            The [T] test durations in seconds.

        Returns
        -------
        llr : torch.Tensor
            The [T] float64 calibrated LLRs (nats).
        probability : torch.Tensor
            The [T] float64 target probabilities.

        Example
        -------
        >>> calibration = QualityCalibration(
        ...     [1.0] + [0.0] * 8, 0.0, info={"top_k": 2}
        ... )
        >>> backend = ScoreBackend(torch.zeros(2), torch.eye(2), calibration)
        >>> pair = torch.tensor([[1.0, 0.0]])
        >>> llr, probability = backend.score_pairs(pair, -pair, [1.0], [1.0])
        >>> round(llr.item(), 4), round(probability.item(), 4)
        (-1.4142, 0.1956)
        """
        enrol = torch.as_tensor(enrol_embeddings).reshape(
            -1, self.cohort.shape[1]
        )
        test = torch.as_tensor(test_embeddings).reshape(
            -1, self.cohort.shape[1]
        )
        as_norm = as_norm_pairs(
            subtract_mean(enrol, self.cohort_mean),
            subtract_mean(test, self.cohort_mean),
            self.cohort,
            self.top_k,
        )
        features = quality_features(
            as_norm, enrol, test, enrol_durations, test_durations
        )
        return (
            torch.from_numpy(self.calibration.llr(features)),
            torch.from_numpy(self.calibration.probability(features)),
        )

    def save(self, folder):
        """Writes ``score_backend.pt`` and ``calibration.json``, atomically.

        Arguments
        ---------
        folder : str or os.PathLike
            The folder (created if missing).

        Example
        -------
        >>> calibration = QualityCalibration(
        ...     [0.0] * 9, 0.0, info={"top_k": 2}
        ... )
        >>> folder = getfixture("tmp_path")
        >>> ScoreBackend(torch.zeros(2), torch.eye(2), calibration).save(
        ...     folder
        ... )
        >>> sorted(p.name for p in folder.iterdir())
        ['calibration.json', 'score_backend.pt']
        """
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            "cohort_mean": self.cohort_mean.detach().cpu().contiguous(),
            "cohort": self.cohort.detach().cpu().contiguous(),
        }
        with atomic_open(folder / SCORE_BACKEND_FILE, "wb") as handle:
            torch.save(tensors, handle)
        self.calibration.save(folder / CALIBRATION_FILE)

    @classmethod
    def load(cls, folder):
        """Reads the back-end files of a folder.

        Arguments
        ---------
        folder : str or os.PathLike
            A model or run folder with both ``BACKEND_FILES``.

        Returns
        -------
        ScoreBackend
            The back-end.

        Raises
        ------
        FileNotFoundError
            If a file is missing.
        ScoreBackendError
            Naming the file that is corrupt or does not fit.

        Example
        -------
        >>> folder = getfixture("tmp_path")
        >>> calibration = QualityCalibration(
        ...     [0.0] * 9, 0.0, info={"top_k": 2}
        ... )
        >>> ScoreBackend(torch.zeros(2), torch.eye(2), calibration).save(
        ...     folder
        ... )
        >>> ScoreBackend.load(folder).cohort.shape
        torch.Size([2, 2])
        """
        folder = pathlib.Path(folder)
        for name in BACKEND_FILES:
            if not (folder / name).is_file():
                raise FileNotFoundError(
                    f"{folder / name} not found (the score back-end needs "
                    f"{' and '.join(BACKEND_FILES)})"
                )
        path = folder / SCORE_BACKEND_FILE
        try:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ScoreBackendError(
                f"{path}: not a readable tensor file ({error})"
            ) from None
        if (
            not isinstance(tensors, dict)
            or set(tensors) != {"cohort_mean", "cohort"}
            or not all(
                isinstance(t, torch.Tensor) and t.is_floating_point()
                for t in tensors.values()
            )
        ):
            raise ScoreBackendError(
                f"{path}: expected the float tensors cohort_mean and cohort"
            )
        if not all(bool(torch.isfinite(t).all()) for t in tensors.values()):
            raise ScoreBackendError(f"{path}: holds NaN or infinite values")
        calibration = QualityCalibration.load(folder / CALIBRATION_FILE)
        return cls(
            tensors["cohort_mean"], tensors["cohort"], calibration, str(path)
        )


def save_score_backend(folder, artefacts):
    """Writes the back-end of ``evaluate_backend_stages`` into a folder.

    The training recipe calls it with its ``output_folder`` (the run
    folder), where ``unipool-sv export`` finds ``score_backend.pt`` and
    ``calibration.json`` and copies them into the model folder.

    Arguments
    ---------
    folder : str or os.PathLike
        The run (or model) folder.
    artefacts : dict
        With ``cohort_mean``, ``cohort`` and ``calibration`` (the JSON
        content), as ``evaluate_backend_stages`` returns them.

    Returns
    -------
    ScoreBackend
        The back-end written.

    Raises
    ------
    ScoreBackendError
        If the artefacts do not fit together.

    Example
    -------
    >>> content = QualityCalibration([0.0] * 9, 0.0, info={"top_k": 2})
    >>> artefacts = {"cohort_mean": torch.zeros(2), "cohort": torch.eye(2),
    ...              "calibration": content.to_dict()}
    >>> folder = getfixture("tmp_path")
    >>> save_score_backend(folder, artefacts).top_k
    2
    >>> sorted(p.name for p in folder.iterdir())
    ['calibration.json', 'score_backend.pt']
    """
    backend = ScoreBackend(
        artefacts["cohort_mean"],
        artefacts["cohort"],
        QualityCalibration.from_dict(artefacts["calibration"]),
    )
    backend.save(folder)
    return backend


def load_score_backend(folder):
    """The back-end of a folder, or None when it has none of its files.

    Arguments
    ---------
    folder : str or os.PathLike
        A model folder.

    Returns
    -------
    ScoreBackend or None
        None when neither back-end file is there.

    Raises
    ------
    FileNotFoundError
        If only one of the two files is there.
    ScoreBackendError
        Naming a corrupt file.

    Example
    -------
    >>> load_score_backend(getfixture("tmp_path")) is None
    True
    """
    folder = pathlib.Path(folder)
    if not any((folder / name).exists() for name in BACKEND_FILES):
        return None
    return ScoreBackend.load(folder)


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
    >>> generator = torch.Generator().manual_seed(0)
    >>> def population(n_speakers, prefix):
    ...     centres = torch.randn(n_speakers, 8, generator=generator)
    ...     table = centres.repeat_interleave(4, dim=0)
    ...     table = table + 0.5 * torch.randn(
    ...         table.shape, generator=generator
    ...     )
    ...     return table, [f"{prefix}{i // 4}" for i in range(len(table))]
    >>> train, speakers = population(12, "t")
    >>> test, test_speakers = population(4, "e")
    >>> ids = [f"u{i}" for i in range(16)]
    >>> trials = {"enrol": ids[:8], "test": ids[8:] , "label": [
    ...     int(test_speakers[i] == test_speakers[i + 8]) for i in range(8)
    ... ]}
    >>> trials["enrol"][0], trials["test"][0] = "u0", "u1"
    >>> trials["label"][0] = 1
    >>> stages, artefacts = evaluate_backend_stages(
    ...     train, speakers, [3.0] * 48, test, ids, [3.0] * 16, trials,
    ...     top_k=5, n_calibration_trials=200,
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
