"""The stored scoring back-end of a model: cohort plus QMF calibration.

``ScoreBackend`` scores trials through the four stages (cosine,
mean-subtracted cosine, AS-norm, QMF); its cohort is a tensor file loaded
with ``weights_only=True`` and its calibration a JSON file, both in a model
folder as ``score_backend.pt`` and ``calibration.json``
(``save_score_backend``, ``load_score_backend``).

Authors
 * unipool-sv developers 2026
"""

import pathlib

import numpy as np
import torch

from unipool_lobes.scoring.calibration_trials import as_norm_pairs
from unipool_lobes.scoring.qmf import QualityCalibration, ScoreBackendError
from unipool_lobes.scoring.quality import (
    _as_float64,
    _assemble_features,
    _check_durations,
    embedding_qualities,
    quality_features,
)
from unipool_lobes.scoring.score_norm import ScoreNormalizer, subtract_mean
from unipool_lobes.scoring.trial_scoring import cosine_score_trials, trial_rows
from unipool_lobes.utils.safe_io import atomic_open

SCORE_BACKEND_FILE = "score_backend.pt"
CALIBRATION_FILE = "calibration.json"
BACKEND_FILES = (SCORE_BACKEND_FILE, CALIBRATION_FILE)


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
    ...     torch.zeros(4),
    ...     torch.randn(5, 4, generator=generator),
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
        >>> calibration = QualityCalibration([0.0] * 9, 0.0, info={"top_k": 2})
        >>> folder = getfixture("tmp_path")
        >>> ScoreBackend(torch.zeros(2), torch.eye(2), calibration).save(folder)
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
        >>> calibration = QualityCalibration([0.0] * 9, 0.0, info={"top_k": 2})
        >>> ScoreBackend(torch.zeros(2), torch.eye(2), calibration).save(folder)
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
    >>> artefacts = {
    ...     "cohort_mean": torch.zeros(2),
    ...     "cohort": torch.eye(2),
    ...     "calibration": content.to_dict(),
    ... }
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
