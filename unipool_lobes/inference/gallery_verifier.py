"""Enrolment, identification and verification against a speaker gallery.

``GalleryMixin`` gives ``SpeakerVerifier`` its gallery methods: enrol
speakers from several utterances into a gallery file
(:mod:`unipool_lobes.inference.gallery`), identify test files among the
enrolled speakers (top-k by cosine against each speaker's mean unit
embedding, with calibrated LLRs when the model folder has a score
back-end, and :data:`UNKNOWN` below the threshold), and verify a file
against one enrolled speaker. Every gallery is checked against the model
(embedding size and :func:`model_id`) before it is used.

Authors
 * unipool-sv developers 2026
"""

import os
import pathlib

import torch

from unipool_lobes.inference.gallery import (
    UNKNOWN,
    GalleryError,
    SpeakerGallery,
    calibrated_speaker_scores,
    check_speaker_name,
    model_id,
)
from unipool_lobes.utils.safe_io import lock_target

__all__ = ["GalleryMixin"]


class GalleryMixin:
    """Gallery methods of ``SpeakerVerifier`` (it inherits them).

    They need the verifier's ``encode_files``, ``file_durations``,
    ``threshold`` and ``score_backend``.

    Example
    -------
    >>> from unipool_lobes.frontends.local_models import write_local_model
    >>> from unipool_lobes.frontends.ssl import MultiLayerSSL
    >>> from unipool_lobes.inference.speaker import SpeakerVerifier
    >>> from unipool_lobes.models.unipool.model import UniPool
    >>> import soundfile
    >>> folder = getfixture("tmp_path")
    >>> verifier = SpeakerVerifier(
    ...     modules={
    ...         "front_end": MultiLayerSSL(write_local_model(str(folder))),
    ...         "embedding_model": UniPool(32, 2, conv_channels=8),
    ...     },
    ...     hparams={"threshold": 0.5, "sample_rate": 16000},
    ... )
    >>> wav = str(folder / "a.wav")
    >>> soundfile.write(wav, torch.randn(16000).numpy() * 0.1, 16000)
    >>> gallery = verifier.enroll_files(folder / "G.safetensors", "ann", [wav])
    >>> found = verifier.identify_files(folder / "G.safetensors", [wav])
    >>> found[0]["speaker"], round(found[0]["score"], 4)
    ('ann', 1.0)
    """

    def gallery_model_id(self):
        """The :func:`model_id` of this model (computed once).

        Returns
        -------
        str
            The hex digest a gallery records.

        Example
        -------
        >>> from unipool_lobes.frontends.local_models import write_local_model
        >>> from unipool_lobes.frontends.ssl import MultiLayerSSL
        >>> from unipool_lobes.inference.speaker import SpeakerVerifier
        >>> from unipool_lobes.models.unipool.model import UniPool
        >>> verifier = SpeakerVerifier(
        ...     modules={
        ...         "front_end": MultiLayerSSL(
        ...             write_local_model(str(getfixture("tmp_path")))
        ...         ),
        ...         "embedding_model": UniPool(32, 2, conv_channels=8),
        ...     },
        ...     hparams={"threshold": 0.5},
        ... )
        >>> len(verifier.gallery_model_id())
        64
        """
        cached = getattr(self, "_gallery_model_id", None)
        if cached is None:
            cached = model_id(self)
            self._gallery_model_id = cached
        return cached

    def embedding_size(self):
        """E, the size of this model's embeddings.

        Returns
        -------
        int
            The backend's output size.

        Example
        -------
        >>> from unipool_lobes.frontends.local_models import write_local_model
        >>> from unipool_lobes.frontends.ssl import MultiLayerSSL
        >>> from unipool_lobes.inference.speaker import SpeakerVerifier
        >>> from unipool_lobes.models.unipool.model import UniPool
        >>> verifier = SpeakerVerifier(
        ...     modules={
        ...         "front_end": MultiLayerSSL(
        ...             write_local_model(str(getfixture("tmp_path")))
        ...         ),
        ...         "embedding_model": UniPool(32, 2, conv_channels=8),
        ...     },
        ...     hparams={"threshold": 0.5},
        ... )
        >>> verifier.embedding_size()
        192
        """
        cached = getattr(self, "_gallery_embedding_size", None)
        classifier = (
            self.mods["classifier"] if "classifier" in self.mods else None
        )
        weight = getattr(classifier, "weight", None)
        if cached is None and weight is not None:
            cached = int(weight.shape[-1])  # [classes, E]
        if cached is None and self.score_backend is not None:
            cached = int(self.score_backend.cohort.shape[1])
        if cached is None:
            wavs = torch.zeros(1, max(self.min_samples, self.sample_rate))
            wavs[0, ::7] = 0.1  # not silent: some models normalise
            cached = int(self.encode_batch(wavs).shape[-1])
            self._gallery_embedding_size = cached
        return cached

    def load_gallery(self, gallery):
        """A gallery, checked against this model.

        Arguments
        ---------
        gallery : str, os.PathLike or SpeakerGallery
            A gallery file or a loaded gallery.

        Returns
        -------
        SpeakerGallery
            The gallery.

        Raises
        ------
        FileNotFoundError
            If the file is missing.
        GalleryError
            If it is corrupt or was enrolled with another model.
        """
        where = _where(gallery)
        if not isinstance(gallery, SpeakerGallery):
            gallery = SpeakerGallery.load(gallery)
        gallery.check_model(
            self.embedding_size(), self.gallery_model_id(), where
        )
        return gallery

    def enroll_embeddings(self, gallery_path, name, embeddings, durations):
        """Adds embedded utterances to a speaker of a gallery file.

        The file is locked, read (or created), updated and written back
        atomically: a failure leaves it as it was.

        Arguments
        ---------
        gallery_path : str or os.PathLike
            The gallery file (created if missing).
        name : str
            The speaker (added, or updated if enrolled).
        embeddings : torch.Tensor
            ``[N, E]`` raw embeddings of this model.
        durations : sequence of float
            The N durations in seconds.

        Returns
        -------
        SpeakerGallery
            The gallery as written.

        Raises
        ------
        GalleryError
            If the file is corrupt, a folder, or from another model.
        FolderBusyError
            If another process writes the same gallery.
        """
        path = pathlib.Path(gallery_path)
        with lock_target(path, "enroll"):
            gallery = SpeakerGallery.open(
                path, self.embedding_size(), self.gallery_model_id()
            )
            gallery.enroll(name, embeddings, durations)
            gallery.save(path)
        return gallery

    def enroll_files(
        self,
        gallery_path,
        name,
        paths,
        batch_size=16,
        progress=False,
        max_batch_seconds=None,
    ):
        """Enrols (or adds to) a speaker from audio files.

        The gallery is checked first, then every file is embedded; only
        then is the gallery updated, so an unreadable file changes nothing.

        Arguments
        ---------
        gallery_path : str or os.PathLike
            The gallery file (created if missing).
        name : str
            The speaker.
        paths : list of str or os.PathLike
            Its audio files (at least one).
        batch_size : int
            Most files per batch.
        progress : bool
            Show a progress bar.
        max_batch_seconds : float, optional
            Most seconds of padded audio per batch.

        Returns
        -------
        SpeakerGallery
            The gallery as written.

        Raises
        ------
        ValueError
            For no files or a bad name.
        GalleryError
            If the gallery is corrupt, a folder, or from another model.
        FileNotFoundError
            If an audio file is missing.
        AudioInputError
            If an audio file is unreadable, empty or too short.
        """
        paths = self.check_enrolment(gallery_path, name, paths)
        embeddings = self.encode_files(
            paths,
            batch_size=batch_size,
            progress=progress,
            max_batch_seconds=max_batch_seconds,
        )
        return self.enroll_embeddings(
            gallery_path, name, embeddings, self.file_durations(paths)
        )

    def check_enrolment(self, gallery_path, name, paths):
        """Refuses an enrolment before any audio is embedded.

        Arguments
        ---------
        gallery_path : str or os.PathLike
            The gallery file (may be absent).
        name : str
            The speaker.
        paths : list of str or os.PathLike
            Its audio files.

        Returns
        -------
        list of str
            The paths.

        Raises
        ------
        ValueError
            For no files or a bad name.
        GalleryError
            If the gallery is corrupt, a folder, or from another model.
        """
        check_speaker_name(name)
        paths = [os.fspath(path) for path in paths]
        if not paths:
            raise ValueError(
                f"{os.fspath(gallery_path)}: no audio files to enrol for "
                f"speaker {name!r}"
            )
        SpeakerGallery.open(
            gallery_path, self.embedding_size(), self.gallery_model_id()
        )
        return paths

    def identify_embeddings(
        self, gallery, embeddings, durations=None, top_k=5, threshold=None
    ):
        """Top-k enrolled speakers of each test embedding.

        Candidates are ranked by cosine against the speakers' mean unit
        embeddings; with the model folder's score back-end each also gets
        its calibrated LLR and probability
        (:func:`~unipool_lobes.inference.gallery.calibrated_speaker_scores`).
        The answer is :data:`UNKNOWN` when the best cosine is not above the
        threshold.

        Arguments
        ---------
        gallery : str, os.PathLike or SpeakerGallery
            The gallery.
        embeddings : torch.Tensor
            ``[N, E]`` raw test embeddings.
        durations : sequence of float, optional
            The N test durations in seconds (needed for LLRs).
        top_k : int
            Candidates kept per test (at most the gallery's size).
        threshold : float, optional
            Cosine threshold; default the model's calibrated one (none:
            the best candidate is always the answer).

        Returns
        -------
        list of dict
            Per test: ``speaker`` (the answer), ``score`` (the best
            cosine), ``threshold`` and ``candidates``, a list of
            ``{"speaker", "score", "llr", "probability"}`` (LLR and
            probability None without a back-end).

        Raises
        ------
        GalleryError
            For an empty gallery or one from another model.
        ValueError
            For a bad ``top_k`` or missing durations with a back-end.
        """
        gallery = self.load_gallery(gallery)
        if not len(gallery):
            raise GalleryError("the gallery holds no speaker")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        threshold = self.threshold if threshold is None else float(threshold)
        embeddings = torch.as_tensor(embeddings).detach().cpu().float()
        embeddings = embeddings.reshape(-1, gallery.embedding_size)
        scores = gallery.scores(embeddings)
        best, rows = scores.topk(min(top_k, len(gallery)), dim=1)
        llr = probability = None
        if self.score_backend is not None:
            if durations is None:
                raise ValueError("calibrated scores need the test durations")
            repeat = rows.shape[1]
            llr, probability = calibrated_speaker_scores(
                self.score_backend,
                gallery,
                rows.reshape(-1).tolist(),
                embeddings.repeat_interleave(repeat, dim=0),
                torch.as_tensor(durations, dtype=torch.float64)
                .repeat_interleave(repeat)
                .tolist(),
            )
            llr = llr.reshape(rows.shape)
            probability = probability.reshape(rows.shape)
        results = []
        for i in range(rows.shape[0]):
            candidates = [
                {
                    "speaker": gallery.speakers[int(rows[i, j])],
                    "score": float(best[i, j]),
                    "llr": None if llr is None else float(llr[i, j]),
                    "probability": None
                    if probability is None
                    else float(probability[i, j]),
                }
                for j in range(rows.shape[1])
            ]
            top = candidates[0]
            known = threshold is None or top["score"] > threshold
            results.append(
                {
                    "speaker": top["speaker"] if known else UNKNOWN,
                    "score": top["score"],
                    "threshold": threshold,
                    "candidates": candidates,
                }
            )
        return results

    def identify_files(
        self,
        gallery_path,
        paths,
        top_k=5,
        threshold=None,
        batch_size=16,
        progress=False,
        max_batch_seconds=None,
    ):
        """Top-k enrolled speakers of each audio file.

        Arguments
        ---------
        gallery_path : str, os.PathLike or SpeakerGallery
            The gallery.
        paths : list of str or os.PathLike
            The test files.
        top_k : int
            Candidates kept per file.
        threshold : float, optional
            Cosine threshold (default the model's calibrated one).
        batch_size : int
            Most files per batch.
        progress : bool
            Show a progress bar.
        max_batch_seconds : float, optional
            Most seconds of padded audio per batch.

        Returns
        -------
        list of dict
            As :meth:`identify_embeddings`, with ``file`` added.

        Raises
        ------
        GalleryError
            For a corrupt or empty gallery, or one from another model.
        FileNotFoundError
            If a file is missing.
        AudioInputError
            If a file is unreadable, empty or too short.
        """
        gallery = self.load_gallery(gallery_path)
        paths = [os.fspath(path) for path in paths]
        embeddings = self.encode_files(
            paths,
            batch_size=batch_size,
            progress=progress,
            max_batch_seconds=max_batch_seconds,
        )
        results = self.identify_embeddings(
            gallery,
            embeddings,
            self.file_durations(paths),
            top_k=top_k,
            threshold=threshold,
        )
        for path, result in zip(paths, results, strict=True):
            result["file"] = path
        return results

    def verify_against(self, gallery, name, path, threshold=None):
        """Verifies an audio file against one enrolled speaker.

        Arguments
        ---------
        gallery : str, os.PathLike or SpeakerGallery
            The gallery.
        name : str
            The enrolled speaker.
        path : str or os.PathLike
            The test file.
        threshold : float, optional
            Cosine threshold; default the calibrated one.

        Returns
        -------
        dict
            As :meth:`verify_embedding_against`.

        Raises
        ------
        GalleryError
            For an unknown speaker (naming a few enrolled ones), or a
            corrupt gallery or one from another model.
        ValueError
            If no threshold is given and the model has none.
        FileNotFoundError
            If the file is missing.
        AudioInputError
            If it is unreadable, empty or too short.
        """
        where = _where(gallery)
        gallery = self.load_gallery(gallery)
        gallery.row_of(name, where)  # before any embedding
        embedding = self.encode_files([path], progress=False)
        return self.verify_embedding_against(
            gallery, name, embedding, self.file_durations([path])[0], threshold
        )

    def verify_embedding_against(
        self, gallery, name, embedding, duration, threshold=None
    ):
        """Scores one test embedding against one enrolled speaker.

        Arguments
        ---------
        gallery : str, os.PathLike or SpeakerGallery
            The gallery.
        name : str
            The enrolled speaker.
        embedding : torch.Tensor
            ``[E]`` (or ``[1, E]``) raw test embedding.
        duration : float
            The test duration in seconds (a feature of the calibration).
        threshold : float, optional
            Cosine threshold; default the calibrated one.

        Returns
        -------
        dict
            ``score`` (cosine against the speaker's mean unit embedding),
            ``decision`` (True: the speaker), ``threshold``, and ``llr``
            and ``probability`` (None without a score back-end).

        Raises
        ------
        GalleryError
            For an unknown speaker (naming a few enrolled ones), or a
            corrupt gallery or one from another model.
        ValueError
            If no threshold is given and the model has none.
        """
        where = _where(gallery)
        gallery = self.load_gallery(gallery)
        row = gallery.row_of(name, where)
        threshold = self._decision_threshold(threshold)
        embedding = torch.as_tensor(embedding).detach().cpu().float()
        embedding = embedding.reshape(1, gallery.embedding_size)
        score = float(gallery.scores(embedding)[0, row])
        llr = probability = None
        if self.score_backend is not None:
            llr, probability = calibrated_speaker_scores(
                self.score_backend, gallery, [row], embedding, [duration]
            )
            llr, probability = float(llr[0]), float(probability[0])
        return {
            "score": score,
            "decision": score > threshold,
            "threshold": threshold,
            "llr": llr,
            "probability": probability,
        }


def _where(gallery):
    """Names a gallery (a file or a loaded one) in messages."""
    if isinstance(gallery, SpeakerGallery):
        return "the gallery"
    return os.fspath(gallery)
