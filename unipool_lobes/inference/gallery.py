"""Speaker galleries: enrolled speaker models in one safetensors file.

A gallery holds, per enrolled speaker, the mean of its L2-normalised
utterance embeddings (the vector a test embedding is scored against by
cosine) and the number of utterances it is the mean of, so that enrolling
more utterances later updates the mean exactly. For the calibrated scores
of a model folder with a score back-end it also keeps the mean of the raw
embeddings and the total enrolled duration: the back-end treats a speaker
model as one enrolment side whose raw embedding is that mean (as its
AS-norm cohort's speaker vectors are built) and whose duration is the
total (see :func:`calibrated_speaker_scores`).

The file (``G.safetensors``) is plain safetensors, readable without
unipool-sv (``safetensors.safe_open(path, "np")``): the float64 tensors
``means`` ``[S, E]``, ``raw_means`` ``[S, E]``, ``durations`` ``[S]`` and
the int64 ``counts`` ``[S]``; its metadata (strings) holds ``format``
(:data:`GALLERY_FORMAT`), ``format_version``, ``speakers`` (a JSON list of
the S names, in row order), ``embedding_size`` and ``model_id`` (see
:func:`model_id`). It is written atomically: a crash or an error while
saving leaves the previous file whole.

Authors
 * unipool-sv developers 2026
"""

import hashlib
import json
import os
import pathlib

import numpy as np
import torch
from safetensors.torch import (
    load as load_safetensors,
    save as save_safetensors,
)

from unipool_lobes.inference.loading import EXPORT_INFO, weights_digest
from unipool_lobes.utils.safe_io import atomic_open

__all__ = [
    "GALLERY_FORMAT",
    "GALLERY_VERSION",
    "MODEL_ID_FILES",
    "UNKNOWN",
    "GalleryError",
    "SpeakerGallery",
    "calibrated_speaker_scores",
    "check_speaker_name",
    "model_id",
]

GALLERY_FORMAT = "unipool-sv speaker gallery"
GALLERY_VERSION = 1
# The files of a model folder that decide its embeddings (a classifier,
# label encoder or score back-end does not change them).
MODEL_ID_FILES = ("embedding_model.ckpt", "front_end.ckpt")
# What identification answers when no speaker scores above the threshold.
UNKNOWN = "unknown"
_TENSORS = ("means", "raw_means", "counts", "durations")
_SHOWN_NAMES = 5


class GalleryError(ValueError):
    """A gallery file that is corrupt, from another model, or misused."""


def model_id(verifier):
    """A stable identity of the model that gives a verifier's embeddings.

    For a folder with checksums in ``export.json``: the SHA-256 of the
    recorded SHA-256 of :data:`MODEL_ID_FILES` (those present), so it
    survives copying the folder, re-exporting the same checkpoint and
    adding or dropping a classifier or score back-end. Otherwise (a
    verifier built from modules, an old folder): the SHA-256 of the
    front-end's and backend's parameters.

    Arguments
    ---------
    verifier : SpeakerVerifier
        The loaded model.

    Returns
    -------
    str
        A 64-character hex digest.

    Example
    -------
    >>> from unipool_lobes.frontends.local_models import write_local_model
    >>> from unipool_lobes.frontends.ssl import MultiLayerSSL
    >>> from unipool_lobes.inference.speaker import SpeakerVerifier
    >>> from unipool_lobes.models.unipool.model import UniPool
    >>> folder = write_local_model(str(getfixture("tmp_path")))
    >>> verifier = SpeakerVerifier(
    ...     modules={
    ...         "front_end": MultiLayerSSL(folder),
    ...         "embedding_model": UniPool(32, 2, conv_channels=8),
    ...     },
    ...     hparams={"threshold": 0.5},
    ... )
    >>> len(model_id(verifier)) == 64 and model_id(verifier) == model_id(
    ...     verifier
    ... )
    True
    """
    folder = getattr(verifier.hparams, "savedir", None)
    records = _export_records(folder) if folder else {}
    digest = hashlib.sha256()
    if "embedding_model.ckpt" in records:
        for name in MODEL_ID_FILES:
            if name in records:
                digest.update(f"{name}:{records[name]}\n".encode())
        return digest.hexdigest()
    return weights_digest(verifier)


def _export_records(folder):
    """``{file name: sha256}`` of a folder's ``export.json`` (or empty)."""
    try:
        info = json.loads((pathlib.Path(folder) / EXPORT_INFO).read_text())
        return {
            name: record["sha256"] for name, record in info["files"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


class SpeakerGallery:
    """Enrolled speaker models: mean unit embedding and count per speaker.

    Arguments
    ---------
    embedding_size : int
        E, the size of the model's embeddings.
    model : str
        The :func:`model_id` of the model the embeddings come from.

    Example
    -------
    >>> gallery = SpeakerGallery(2, model="m")
    >>> gallery.enroll("ann", torch.tensor([[3.0, 4.0], [0.0, 2.0]]), [1, 2])
    >>> gallery.means[0].tolist(), gallery.counts.tolist()
    ([0.3, 0.9], [2])
    >>> path = getfixture("tmp_path") / "G.safetensors"
    >>> gallery.save(path)
    >>> SpeakerGallery.load(path).speakers
    ['ann']
    """

    def __init__(self, embedding_size, model):
        self.embedding_size = int(embedding_size)
        self.model = str(model)
        self.speakers = []
        size = self.embedding_size
        self.means = torch.zeros(0, size, dtype=torch.float64)
        self.raw_means = torch.zeros(0, size, dtype=torch.float64)
        self.counts = torch.zeros(0, dtype=torch.int64)
        self.durations = torch.zeros(0, dtype=torch.float64)

    def __len__(self):
        return len(self.speakers)

    def __contains__(self, name):
        return name in self.speakers

    def enroll(self, name, embeddings, durations):
        """Adds utterances to a speaker (a new one or an enrolled one).

        The speaker's mean becomes the mean over all its utterances of
        their L2-normalised embeddings, exactly (float64), whether they
        came at once or in several calls.

        Arguments
        ---------
        name : str
            The speaker (non-empty, no control characters, no leading or
            trailing space, not :data:`UNKNOWN`).
        embeddings : torch.Tensor
            ``[N, E]`` (or ``[N, 1, E]``) raw embeddings, N >= 1.
        durations : sequence of float
            The N utterance durations in seconds.

        Raises
        ------
        ValueError
            For a bad name, no embeddings, a wrong size or non-finite
            values.

        Example
        -------
        >>> gallery = SpeakerGallery(2, model="m")
        >>> gallery.enroll("bo", torch.tensor([[1.0, 0.0]]), [1.0])
        >>> gallery.enroll("bo", torch.tensor([[0.0, 5.0]]), [2.0])
        >>> gallery.means.tolist(), gallery.durations.tolist()
        ([[0.5, 0.5]], [3.0])
        """
        check_speaker_name(name)
        embeddings = torch.as_tensor(embeddings).detach().cpu()
        if embeddings.dim() not in (2, 3):
            raise ValueError(
                f"embeddings must be [N, E] or [N, 1, E], got shape "
                f"{tuple(embeddings.shape)}"
            )
        embeddings = embeddings.to(torch.float64)
        embeddings = embeddings.reshape(-1, embeddings.shape[-1])
        if embeddings.shape[0] == 0:
            raise ValueError(f"no utterances to enrol for speaker {name!r}")
        if embeddings.shape[1] != self.embedding_size:
            raise GalleryError(
                f"embeddings of size {embeddings.shape[1]} for a gallery of "
                f"size {self.embedding_size}"
            )
        durations = torch.as_tensor(durations, dtype=torch.float64).reshape(-1)
        if durations.shape[0] != embeddings.shape[0]:
            raise ValueError(
                f"{durations.shape[0]} durations for {embeddings.shape[0]} "
                "embeddings"
            )
        if not bool(torch.isfinite(embeddings).all()) or not bool(
            (torch.isfinite(durations) & (durations > 0)).all()
        ):
            raise ValueError(
                f"non-finite embeddings or bad durations for {name!r}"
            )
        unit = torch.nn.functional.normalize(embeddings, dim=1)
        added = embeddings.shape[0]
        if name not in self.speakers:
            self.speakers.append(name)
            self.means = torch.cat([self.means, unit.mean(0, keepdim=True)])
            self.raw_means = torch.cat(
                [self.raw_means, embeddings.mean(0, keepdim=True)]
            )
            self.counts = torch.cat([self.counts, torch.tensor([added])])
            self.durations = torch.cat(
                [self.durations, durations.sum().reshape(1)]
            )
            return
        row = self.speakers.index(name)
        count = int(self.counts[row])
        total = count + added
        self.means[row] = (self.means[row] * count + unit.sum(0)) / total
        self.raw_means[row] = (
            self.raw_means[row] * count + embeddings.sum(0)
        ) / total
        self.counts[row] = total
        self.durations[row] += durations.sum()

    def remove(self, name):
        """Removes an enrolled speaker.

        Arguments
        ---------
        name : str
            The speaker.

        Raises
        ------
        GalleryError
            If the speaker is not enrolled.

        Example
        -------
        >>> gallery = SpeakerGallery(2, model="m")
        >>> gallery.enroll("bo", torch.ones(1, 2), [1.0])
        >>> gallery.remove("bo")
        >>> len(gallery)
        0
        """
        row = self.row_of(name)
        keep = [i for i in range(len(self.speakers)) if i != row]
        self.speakers.pop(row)
        for attribute in _TENSORS:
            setattr(self, attribute, getattr(self, attribute)[keep])

    def row_of(self, name, where="the gallery"):
        """The row of an enrolled speaker.

        Arguments
        ---------
        name : str
            The speaker.
        where : str
            Names the gallery in the error.

        Returns
        -------
        int
            Its row in ``means``.

        Raises
        ------
        GalleryError
            Naming a few enrolled speakers when ``name`` is not one.

        Example
        -------
        >>> gallery = SpeakerGallery(2, model="m")
        >>> gallery.enroll("bo", torch.ones(1, 2), [1.0])
        >>> gallery.row_of("bo")
        0
        """
        if name in self.speakers:
            return self.speakers.index(name)
        if not self.speakers:
            raise GalleryError(f"{where}: no speaker {name!r} (it is empty)")
        shown = ", ".join(repr(s) for s in self.speakers[:_SHOWN_NAMES])
        more = len(self.speakers) - _SHOWN_NAMES
        shown += f" and {more} more" if more > 0 else ""
        raise GalleryError(
            f"{where}: no speaker {name!r}; it holds {len(self.speakers)}: "
            f"{shown}"
        )

    def scores(self, embeddings):
        """Cosine scores of test embeddings against every speaker model.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[N, E]`` (or ``[N, 1, E]``) test embeddings.

        Returns
        -------
        torch.Tensor
            ``[N, S]`` float64 cosines.

        Example
        -------
        >>> gallery = SpeakerGallery(2, model="m")
        >>> gallery.enroll("bo", torch.tensor([[2.0, 0.0]]), [1.0])
        >>> gallery.scores(torch.tensor([[1.0, 1.0]])).round(decimals=4)
        tensor([[0.7071]], dtype=torch.float64)
        """
        embeddings = torch.as_tensor(embeddings).detach().cpu()
        embeddings = embeddings.to(torch.float64).reshape(
            -1, self.embedding_size
        )
        unit = torch.nn.functional.normalize(embeddings, dim=1)
        return unit @ torch.nn.functional.normalize(self.means, dim=1).T

    def check_model(self, size, model, where="the gallery"):
        """Refuses a gallery enrolled with another model.

        Arguments
        ---------
        size : int
            The model's embedding size.
        model : str
            The model's :func:`model_id`.
        where : str
            Names the gallery in the error.

        Raises
        ------
        GalleryError
            On an embedding size or model identity mismatch.

        Example
        -------
        >>> SpeakerGallery(2, model="m").check_model(2, "m")
        """
        if int(size) != self.embedding_size:
            raise GalleryError(
                f"{where}: enrolled with embeddings of size "
                f"{self.embedding_size}, this model gives {size}: it comes "
                "from another model"
            )
        if str(model) != self.model:
            raise GalleryError(
                f"{where}: enrolled with another model (model id "
                f"{self.model[:12]}..., this model is {str(model)[:12]}...); "
                "enrol the speakers again with this model into another "
                "gallery"
            )

    def save(self, path):
        """Writes the gallery atomically (the old file stays until done).

        Arguments
        ---------
        path : str or os.PathLike
            The ``.safetensors`` file.

        Example
        -------
        >>> path = getfixture("tmp_path") / "G.safetensors"
        >>> SpeakerGallery(4, model="m").save(path)
        >>> path.stat().st_size > 0
        True
        """
        path = pathlib.Path(path)
        _refuse_folder(path)
        metadata = {
            "format": GALLERY_FORMAT,
            "format_version": str(GALLERY_VERSION),
            "speakers": json.dumps(self.speakers, ensure_ascii=False),
            "embedding_size": str(self.embedding_size),
            "model_id": self.model,
        }
        tensors = {name: getattr(self, name).contiguous() for name in _TENSORS}
        data = save_safetensors(tensors, metadata=metadata)
        with atomic_open(path, "wb") as target:
            target.write(data)

    @classmethod
    def load(cls, path):
        """Reads and checks a gallery file.

        Arguments
        ---------
        path : str or os.PathLike
            The ``.safetensors`` file.

        Returns
        -------
        SpeakerGallery
            The gallery.

        Raises
        ------
        FileNotFoundError
            If the file is missing.
        GalleryError
            If it is a folder, not safetensors, not a gallery, of a newer
            format, inconsistent or holds non-finite values (the message
            names the file and the cause).

        Example
        -------
        >>> path = getfixture("tmp_path") / "G.safetensors"
        >>> SpeakerGallery(4, model="m").save(path)
        >>> SpeakerGallery.load(path).embedding_size
        4
        """
        path = pathlib.Path(path)
        _refuse_folder(path)
        if not path.exists():
            raise FileNotFoundError(f"gallery file not found: {path}")
        data = path.read_bytes()
        try:
            tensors = load_safetensors(data)
            metadata = _safetensors_metadata(data)
        except Exception as error:  # SafetensorError, bad JSON header
            cause = " ".join(str(error).split())
            raise GalleryError(
                f"{path}: not a readable safetensors gallery file ({cause}); "
                "it is truncated or corrupt"
            ) from None
        return cls._from_parts(path, tensors, metadata)

    @classmethod
    def open(cls, path, size, model):
        """Loads a gallery of a model, or a new empty one if it is absent.

        Arguments
        ---------
        path : str or os.PathLike
            The ``.safetensors`` file.
        size : int
            The model's embedding size.
        model : str
            The model's :func:`model_id`.

        Returns
        -------
        SpeakerGallery
            The gallery, checked against the model.

        Raises
        ------
        GalleryError
            As :meth:`load` and :meth:`check_model`.

        Example
        -------
        >>> path = getfixture("tmp_path") / "new.safetensors"
        >>> len(SpeakerGallery.open(path, 4, "m"))
        0
        """
        path = pathlib.Path(path)
        _refuse_folder(path)
        if not path.exists():
            return cls(size, model)
        gallery = cls.load(path)
        gallery.check_model(size, model, where=str(path))
        return gallery

    @classmethod
    def _from_parts(cls, path, tensors, metadata):
        """Checks a read file's tensors and metadata; builds the gallery."""
        if metadata.get("format") != GALLERY_FORMAT:
            raise GalleryError(
                f"{path}: a safetensors file but not a unipool-sv gallery "
                f"(metadata 'format' is {metadata.get('format')!r})"
            )
        version = metadata.get("format_version", "")
        if not version.isdigit():
            raise GalleryError(f"{path}: bad format_version {version!r}")
        if int(version) > GALLERY_VERSION:
            raise GalleryError(
                f"{path}: gallery format {version} is newer than this "
                f"unipool-sv reads ({GALLERY_VERSION}); upgrade unipool-sv"
            )
        try:
            speakers = json.loads(metadata["speakers"])
            size = int(metadata["embedding_size"])
            model = metadata["model_id"]
        except (KeyError, ValueError) as error:
            raise GalleryError(
                f"{path}: bad gallery metadata ({type(error).__name__}: "
                f"{error})"
            ) from None
        if (
            not isinstance(speakers, list)
            or not all(isinstance(s, str) for s in speakers)
            or len(set(speakers)) != len(speakers)
        ):
            raise GalleryError(
                f"{path}: bad gallery metadata: 'speakers' must be a list of "
                "distinct names"
            )
        if set(tensors) != set(_TENSORS):
            raise GalleryError(
                f"{path}: expected the tensors {sorted(_TENSORS)}, found "
                f"{sorted(tensors)}"
            )
        n = len(speakers)
        shapes = {
            "means": ((n, size), torch.float64),
            "raw_means": ((n, size), torch.float64),
            "counts": ((n,), torch.int64),
            "durations": ((n,), torch.float64),
        }
        for name, (shape, dtype) in shapes.items():
            tensor = tensors[name]
            if tuple(tensor.shape) != shape or tensor.dtype != dtype:
                raise GalleryError(
                    f"{path}: tensor {name!r} is {tensor.dtype} "
                    f"{tuple(tensor.shape)}, expected {dtype} {shape} for "
                    f"{n} speakers of size {size}"
                )
        gallery = cls(size, model)
        gallery.speakers = speakers
        for name in _TENSORS:
            setattr(gallery, name, tensors[name].clone())
        bad = ~(
            torch.isfinite(gallery.means).all(dim=1)
            & torch.isfinite(gallery.raw_means).all(dim=1)
            & torch.isfinite(gallery.durations)
            & (gallery.durations > 0)
            & (gallery.counts >= 1)
        )
        if bool(bad.any()):
            first = int(bad.nonzero()[0])
            raise GalleryError(
                f"{path}: the model of speaker {speakers[first]!r} holds NaN, "
                "infinite or impossible values; the file is corrupt"
            )
        return gallery


def check_speaker_name(name):
    """Refuses a speaker name that trial lists and outputs cannot hold.

    Arguments
    ---------
    name : str
        The speaker name.

    Raises
    ------
    ValueError
        For an empty name, control characters, leading or trailing
        whitespace, or the reserved :data:`UNKNOWN`.

    Example
    -------
    >>> check_speaker_name("p225")
    >>> try:
    ...     check_speaker_name(" p225")
    ... except ValueError as error:
    ...     print(error)
    bad speaker name ' p225': leading or trailing whitespace
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"bad speaker name {name!r}: it is empty")
    if name != name.strip():
        raise ValueError(
            f"bad speaker name {name!r}: leading or trailing whitespace"
        )
    if not name.isprintable():
        raise ValueError(f"bad speaker name {name!r}: control characters")
    if name == UNKNOWN:
        raise ValueError(
            f"bad speaker name {name!r}: reserved for an identification "
            "below the threshold"
        )


def calibrated_speaker_scores(
    backend, gallery, rows, test_embeddings, test_durations
):
    """Calibrated LLRs of test embeddings against speaker models.

    The score back-end (``unipool_lobes.scoring.score_backend``) was
    fitted on single-utterance pairs; a speaker model enters it as one
    enrolment side: its raw embedding is the mean of its utterances' raw
    embeddings (the AS-norm cohort's speaker vectors are built the same
    way, ``speaker_mean_cohort``), and its duration the total enrolled
    duration. A speaker enrolled from one utterance gets exactly the LLR
    of that utterance against the test.

    Arguments
    ---------
    backend : unipool_lobes.scoring.score_backend.ScoreBackend
        The model folder's back-end.
    gallery : SpeakerGallery
        The gallery.
    rows : sequence of int
        ``[T]`` gallery rows (speakers), one per pair.
    test_embeddings : torch.Tensor
        ``[T, E]`` raw test embeddings, one per pair.
    test_durations : sequence of float
        ``[T]`` test durations in seconds.

    Returns
    -------
    llr : torch.Tensor
        ``[T]`` float64 LLRs (nats).
    probability : torch.Tensor
        ``[T]`` float64 target probabilities.

    Example
    -------
    >>> from unipool_lobes.scoring.qmf import QualityCalibration
    >>> from unipool_lobes.scoring.score_backend import ScoreBackend
    >>> calibration = QualityCalibration(
    ...     [1.0] + [0.0] * 8, 0.0, info={"top_k": 2}
    ... )
    >>> backend = ScoreBackend(torch.zeros(2), torch.eye(2), calibration)
    >>> gallery = SpeakerGallery(2, model="m")
    >>> gallery.enroll("bo", torch.tensor([[1.0, 0.0]]), [1.0])
    >>> llr, _ = calibrated_speaker_scores(
    ...     backend, gallery, [0], torch.tensor([[-1.0, 0.0]]), [1.0]
    ... )
    >>> round(llr.item(), 4)
    -1.4142
    """
    rows = torch.as_tensor(list(rows), dtype=torch.long)
    dtype = backend.cohort.dtype
    enrol = gallery.raw_means[rows].to(dtype)
    test = torch.as_tensor(test_embeddings).detach().cpu().to(dtype)
    return backend.score_pairs(
        enrol,
        test.reshape(-1, gallery.embedding_size),
        gallery.durations[rows].tolist(),
        np.asarray(test_durations, dtype=np.float64).reshape(-1),
    )


def _refuse_folder(path):
    """A gallery path that is a folder is a clear error."""
    if os.path.isdir(path):
        raise GalleryError(
            f"{path} is a folder; --gallery names a gallery file (e.g. "
            "G.safetensors)"
        )


def _safetensors_metadata(data):
    """The ``__metadata__`` of safetensors bytes (``{}`` if none)."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length].decode("utf-8"))
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise ValueError("__metadata__ is not a mapping")
    return metadata
