"""The QMF calibration: a logistic regression over the quality features.

``QualityCalibration`` holds a fitted model as plain JSON (never a
pickle): LLRs are recomputed from the stored coefficients, so a loaded
file gives identical outputs. ``fit_calibration`` draws the fitting trials
from the training set (:mod:`unipool_lobes.scoring.calibration_trials`),
computes their quality features (:mod:`unipool_lobes.scoring.quality`) and
fits the authors' regression.

Authors
 * unipool-sv developers 2026
"""

import json
import logging
import math
import pathlib

import numpy as np
import torch

from unipool_lobes.scoring.calibration_trials import (
    as_norm_pairs,
    draw_calibration_trials,
)
from unipool_lobes.scoring.quality import (
    FEATURE_NAMES,
    _as_float64,
    quality_features,
)
from unipool_lobes.scoring.score_norm import subtract_mean
from unipool_lobes.utils.safe_io import write_json_atomic

logger = logging.getLogger(__name__)

CALIBRATION_FORMAT = "unipool-sv QMF calibration"
CALIBRATION_VERSION = 1


class ScoreBackendError(ValueError):
    """A back-end file (cohort or calibration) that is corrupt or does not
    fit: the message names the file."""


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
    >>> (
    ...     calibration.llr(features).tolist(),
    ...     calibration.probability(features).tolist(),
    ... )
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
        write_json_atomic(path, self.to_dict())

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
    >>> from unipool_lobes.scoring.score_norm import speaker_mean_cohort
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
