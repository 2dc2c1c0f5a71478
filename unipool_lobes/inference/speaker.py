"""Pretrained speaker-verification interface for SSL front-end models.

``SpeakerVerifier`` is SpeechBrain's ``SpeakerRecognition`` with the fixes
an SSL model needs (see spec notes on ``speechbrain.inference.speaker``):

* the waveform lengths reach the front-end (``front_end(wavs, wav_lens)``
  then ``embedding_model(feats, feat_lens)``), so an utterance gets the same
  embedding alone or in a padded batch;
* the default decision threshold is the calibrated one of the model folder
  (the EER threshold on the validation trials), not a fixed 0.25;
* checkpoints load strictly: missing, unexpected or misshaped keys are an
  error that names them (SpeechBrain's ``Pretrainer`` only logs them);
* ``from_hparams`` reads a local folder in place and never looks a name up
  on the hub;
* files of any sample rate and channel count are resampled and down-mixed,
  and a missing, unreadable, empty or too-short file is a clear error.

It adds ``verify_embeddings`` (scoring precomputed embeddings, SpeechBrain
issue #772) and ``encode_files`` (many files, batched by length). When the
model folder holds a score back-end (``score_backend.pt`` and
``calibration.json``, see ``unipool_lobes.scoring.calibration``),
``calibrated_files`` and ``calibrated_embeddings`` give a trial's
calibrated log-likelihood ratio and target probability.

Authors
 * unipool-sv developers 2026
"""

import os

import torch
import torch.nn.functional as F
from speechbrain.dataio.preprocess import AudioNormalizer
from speechbrain.inference.speaker import SpeakerRecognition
from tqdm import tqdm

from unipool_lobes.dataio.batching import duration_batches
from unipool_lobes.inference.audio import (
    AudioInputError,
    audio_duration,
    check_length,
    minimum_input_samples,
    pad_waveforms,
    read_audio as read_checked_audio,
    sample_counts,
)
from unipool_lobes.inference.gallery_verifier import GalleryMixin
from unipool_lobes.inference.loading import (
    EXPORT_INFO,
    CheckpointMismatchError,
    load_pretrained_hparams,
    load_state_dict_strict,
)
from unipool_lobes.inference.long_audio import LongAudioMixin, long_audio_aware
from unipool_lobes.inference.onnx_runtime import OnnxRuntimeMixin
from unipool_lobes.scoring.score_backend import (
    BACKEND_FILES,
    load_score_backend,
)

# The names of this module before the audio helpers (``.audio``) and the
# strict loading (``.loading``) moved out, given here for old imports and
# old exported folders (``load_state_dict_strict`` hooks in their yaml).
__all__ = [
    "EXPORT_INFO",
    "AudioInputError",
    "CheckpointMismatchError",
    "SpeakerVerifier",
    "load_state_dict_strict",
    "minimum_input_samples",
    "pad_waveforms",
]


class SpeakerVerifier(
    GalleryMixin, LongAudioMixin, OnnxRuntimeMixin, SpeakerRecognition
):
    """Speaker verification with a multi-layer SSL model and a backend.

    Modules (``modules`` of the yaml): ``front_end`` (waveforms and relative
    lengths to features and relative lengths), ``embedding_model``
    (features and lengths to ``[B, 1, E]``) and, optionally,
    ``classifier``. Hyperparameters used: ``threshold`` (calibrated cosine
    threshold), ``sample_rate``, ``audio_normalizer``, ``label_encoder``.

    Load an exported folder with ``SpeakerVerifier.from_hparams(source=
    folder)``; or build one from modules, as below. A file longer than
    ``chunk_seconds`` (10 s) is embedded by overlapping windows (the mean of
    their unit embeddings), silence removed first if asked:
    ``configure_long_audio`` (``unipool_lobes.inference.long_audio``).

    Arguments
    ---------
    *args : tuple
        Passed to ``speechbrain.inference.interfaces.Pretrained``
        (``modules``, ``hparams``, ``run_opts``, ``freeze_params``).
    **kwargs : dict
        Passed to ``Pretrained`` as well.

    Raises
    ------
    ValueError
        If ``front_end`` or ``embedding_model`` is missing.

    Example
    -------
    >>> from unipool_lobes.frontends.local_models import write_local_model
    >>> from unipool_lobes.frontends.ssl import MultiLayerSSL
    >>> from unipool_lobes.models.unipool.model import UniPool
    >>> model_folder = write_local_model(str(getfixture("tmp_path")))
    >>> verifier = SpeakerVerifier(
    ...     modules={
    ...         "front_end": MultiLayerSSL(model_folder),
    ...         "embedding_model": UniPool(32, 2, conv_channels=8),
    ...     },
    ...     hparams={"threshold": 0.5},
    ...     run_opts={"device": "cpu"},
    ... )
    >>> wavs = torch.randn(2, 16000)
    >>> verifier.encode_batch(wavs, torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 1, 192])
    >>> score, decision = verifier.verify_batch(wavs[:1], wavs[1:])
    >>> score.shape, decision.dtype
    (torch.Size([1, 1]), torch.bool)
    """

    MODULES_NEEDED = ["front_end", "embedding_model"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        missing = [
            name for name in self.MODULES_NEEDED if name not in self.mods
        ]
        if missing:
            raise ValueError(
                f"SpeakerVerifier needs the modules {self.MODULES_NEEDED}; "
                f"the hyperparams' 'modules' lack {missing}"
            )
        rate = getattr(self.hparams, "sample_rate", None)
        if rate is not None and not hasattr(self.hparams, "audio_normalizer"):
            self.audio_normalizer = AudioNormalizer(sample_rate=int(rate))
        self.sample_rate = int(self.audio_normalizer.sample_rate)
        model_rate = getattr(self.mods.front_end, "sample_rate", None)
        if model_rate is not None and int(model_rate) != self.sample_rate:
            raise ValueError(
                f"the audio normalizer resamples to {self.sample_rate} Hz but "
                f"the front-end expects {model_rate} Hz"
            )
        self.min_samples = minimum_input_samples(self.mods.front_end)
        # The folder's ScoreBackend (from_hparams), or None.
        self.score_backend = None

    @classmethod
    def from_hparams(
        cls,
        source,
        hparams_file="hyperparams.yaml",
        overrides=None,
        savedir=None,
        **kwargs,
    ):
        """Loads a pretrained folder in place, offline, strictly.

        Every ``torch.nn.Module`` loadable of the yaml's ``pretrainer``
        (``<name>.ckpt`` in the folder unless the yaml gives a path) is
        loaded with :func:`load_state_dict_strict`; ``label_encoder.txt``,
        when present, fills the ``label_encoder``.

        Arguments
        ---------
        source : str or os.PathLike
            The pretrained folder (never a hub id).
        hparams_file : str
            The yaml file in the folder.
        overrides : dict, optional
            Overrides for the yaml.
        savedir : None
            Unused: the files are read in place (kept for SpeechBrain's
            signature).
        **kwargs : dict
            Passed to the constructor (e.g. ``run_opts={"device": "cuda"}``).

        Returns
        -------
        SpeakerVerifier
            The loaded interface, in eval mode, parameters frozen.

        Raises
        ------
        FileNotFoundError
            If the folder, its yaml or a checkpoint file is missing.
        CheckpointMismatchError
            If a checkpoint does not fit its module.
        unipool_lobes.training.checkpoints.CheckpointCorruptError
            If a file differs from the checksum ``export.json`` records,
            or a checkpoint holds non-finite values.
        ValueError
            If the yaml has no ``pretrainer``.
        unipool_lobes.scoring.calibration.ScoreBackendError
            If the folder's score back-end files are corrupt (one without
            the other is a FileNotFoundError).
        """
        folder, hparams = load_pretrained_hparams(
            source, hparams_file, overrides
        )
        verifier = cls(modules=hparams["modules"], hparams=hparams, **kwargs)
        verifier.score_backend = load_score_backend(folder)
        return verifier

    @property
    def threshold(self):
        """The calibrated threshold of the model folder (None if absent)."""
        return getattr(self.hparams, "threshold", None)

    def encode_batch(self, wavs, wav_lens=None, normalize=False):
        """Embeds a batch of waveforms; the lengths reach the front-end.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, S]`` waveforms at ``sample_rate``, zero-padded, or one
            ``[S]`` waveform.
        wav_lens : torch.Tensor, optional
            ``[B]`` lengths relative to ``S``; None means all full.
        normalize : bool
            Return unit-length (L2-normalised) embeddings. These models have
            no embedding normaliser (SpeechBrain's ``mean_var_norm_emb``).

        Returns
        -------
        torch.Tensor
            ``[B, 1, E]`` float32 embeddings.

        Raises
        ------
        AudioInputError
            If a waveform is empty or shorter than ``min_samples``.
        """
        wavs, wav_lens = self._as_batch(wavs, wav_lens)
        embeddings, _ = self._embed(wavs, wav_lens)
        if normalize:
            embeddings = F.normalize(embeddings, dim=-1)
        return embeddings

    def verify_batch(
        self, wavs1, wavs2, wav1_lens=None, wav2_lens=None, threshold=None
    ):
        """Scores pairs of waveforms by the cosine of their embeddings.

        Arguments
        ---------
        wavs1 : torch.Tensor
            ``[B, S1]`` first waveforms (or one ``[S1]``).
        wavs2 : torch.Tensor
            ``[B, S2]`` second waveforms (or one ``[S2]``).
        wav1_lens : torch.Tensor, optional
            ``[B]`` relative lengths of ``wavs1``.
        wav2_lens : torch.Tensor, optional
            ``[B]`` relative lengths of ``wavs2``.
        threshold : float, optional
            Decision threshold; default the calibrated one.

        Returns
        -------
        score : torch.Tensor
            ``[B, 1]`` cosine scores.
        decision : torch.Tensor
            ``[B, 1]`` True where ``score > threshold`` (same speaker).
        """
        embeddings1 = self.encode_batch(wavs1, wav1_lens)
        embeddings2 = self.encode_batch(wavs2, wav2_lens)
        return self.verify_embeddings(embeddings1, embeddings2, threshold)

    def verify_embeddings(self, embeddings1, embeddings2, threshold=None):
        """Scores pairs of precomputed embeddings (SpeechBrain issue #772).

        Arguments
        ---------
        embeddings1 : torch.Tensor or numpy.ndarray
            ``[..., E]`` embeddings (e.g. ``[B, 1, E]`` or ``[E]``).
        embeddings2 : torch.Tensor or numpy.ndarray
            Embeddings of the same (or a broadcastable) shape.
        threshold : float, optional
            Decision threshold; default the calibrated one.

        Returns
        -------
        score : torch.Tensor
            Cosine scores over the last axis.
        decision : torch.Tensor
            True where ``score > threshold``.

        Raises
        ------
        ValueError
            If no threshold is given and the model has none.
        """
        threshold = self._decision_threshold(threshold)
        embeddings1 = torch.as_tensor(embeddings1, device=self.device).float()
        embeddings2 = torch.as_tensor(embeddings2, device=self.device).float()
        score = self.similarity(embeddings1, embeddings2)
        return score, score > threshold

    def verify_files(self, path_x, path_y, threshold=None):
        """Verifies two audio files (any sample rate and channel count).

        Arguments
        ---------
        path_x : str or os.PathLike
            First audio file.
        path_y : str or os.PathLike
            Second audio file.
        threshold : float, optional
            Decision threshold; default the calibrated one.

        Returns
        -------
        score : torch.Tensor
            ``[1]`` cosine score.
        decision : torch.Tensor
            ``[1]`` True for the same speaker.

        Raises
        ------
        FileNotFoundError
            If a file is missing.
        AudioInputError
            If a file is unreadable, empty or too short.
        """
        # each alone through encode_files: long files by windows, the VAD
        embeddings = self.encode_files([path_x, path_y], 1, progress=False)
        return self.verify_embeddings(embeddings[:1], embeddings[1:], threshold)

    def calibrated_embeddings(
        self, embeddings1, embeddings2, durations1, durations2
    ):
        """Calibrated LLRs and probabilities of embedding pairs.

        Needs the model folder's score back-end: AS-norm against its cohort,
        then its QMF calibration (``unipool_lobes.scoring.calibration``).

        Arguments
        ---------
        embeddings1 : torch.Tensor
            ``[B, E]`` (or ``[B, 1, E]``) raw enrolment embeddings.
        embeddings2 : torch.Tensor
            ``[B, E]`` raw test embeddings.
        durations1 : sequence of float
            ``[B]`` durations of the enrolment audio in seconds.
        durations2 : sequence of float
            ``[B]`` durations of the test audio in seconds.

        Returns
        -------
        llr : torch.Tensor
            ``[B]`` float64 calibrated log-likelihood ratios (nats).
        probability : torch.Tensor
            ``[B]`` float64 target probabilities (at the calibration's
            balanced fitting prior).

        Raises
        ------
        ValueError
            If the model folder has no score back-end.
        """
        backend = self._require_score_backend()
        size = backend.cohort.shape[1]
        embeddings1 = torch.as_tensor(embeddings1).detach().cpu().float()
        embeddings2 = torch.as_tensor(embeddings2).detach().cpu().float()
        return backend.score_pairs(
            embeddings1.reshape(-1, size),
            embeddings2.reshape(-1, size),
            durations1,
            durations2,
        )

    def calibrated_files(self, path_x, path_y):
        """The calibrated LLR and probability of two audio files.

        The durations (a QMF feature) are the files' lengths in seconds;
        the embeddings are ``encode_files``'s (windows, VAD).

        Arguments
        ---------
        path_x : str or os.PathLike
            Enrolment audio file.
        path_y : str or os.PathLike
            Test audio file.

        Returns
        -------
        llr : float
            The calibrated log-likelihood ratio (nats).
        probability : float
            The target probability.

        Raises
        ------
        ValueError
            If the model folder has no score back-end.
        FileNotFoundError
            If a file is missing.
        AudioInputError
            If a file is unreadable, empty or too short.
        """
        self._require_score_backend()
        embeddings = self.encode_files([path_x, path_y], 1, progress=False)
        durations = self.file_durations([path_x, path_y])
        llr, probability = self.calibrated_embeddings(
            embeddings[:1], embeddings[1:], durations[:1], durations[1:]
        )
        return float(llr[0]), float(probability[0])

    def file_durations(self, paths, segments=None):
        """Durations in seconds of files or segments (headers only).

        Arguments
        ---------
        paths : list of str or os.PathLike
            Local audio files.
        segments : list of tuple, optional
            One ``(start, stop)`` sample range per file, or None.

        Returns
        -------
        list of float
            One duration per file.

        Raises
        ------
        FileNotFoundError
            If a file is missing.
        AudioInputError
            If a header is unreadable.
        """
        segments = segments or [None] * len(paths)
        return [
            self._duration(os.fspath(path), segment)
            for path, segment in zip(paths, segments, strict=True)
        ]

    def _require_score_backend(self):
        """The score back-end, or a ValueError saying what is missing."""
        if self.score_backend is None:
            raise ValueError(
                "the model folder has no score back-end "
                f"({' and '.join(BACKEND_FILES)}): calibrated scores need it"
            )
        return self.score_backend

    def load_audio(self, path, savedir=None):
        """Reads a local audio file as a mono waveform at ``sample_rate``.

        Arguments
        ---------
        path : str or os.PathLike
            A local audio file (no URL, no hub path).
        savedir : None
            Unused; kept for SpeechBrain's signature.

        Returns
        -------
        torch.Tensor
            ``[S]`` waveform on the interface's device.

        Raises
        ------
        FileNotFoundError
            If the file is missing.
        AudioInputError
            If it is unreadable, empty or too short.
        """
        return self.read_audio(path).to(self.device)

    def read_audio(self, path, segment=None):
        """Reads (part of) an audio file as a mono CPU waveform, checked.

        Arguments
        ---------
        path : str or os.PathLike
            A local audio file.
        segment : tuple of int, optional
            ``(start, stop)`` in samples of the file's own rate.

        Returns
        -------
        torch.Tensor
            ``[S]`` float32 waveform at ``sample_rate``.

        Raises
        ------
        FileNotFoundError
            If the file is missing.
        AudioInputError
            If it is unreadable, empty or too short.
        """
        return read_checked_audio(
            path, self.audio_normalizer, self.min_samples, segment
        )

    @long_audio_aware
    def encode_files(
        self,
        paths,
        batch_size=16,
        progress=True,
        segments=None,
        return_layer_weights=False,
        max_batch_seconds=None,
    ):
        """Embeds many files, in batches of similar length.

        Files are sorted by duration (shortest first, as SpeechBrain's
        evaluation sets), padded per batch, and their lengths passed to the
        model; the embeddings come back in the input order. A batch holds
        at most ``batch_size`` files and ``max_batch_seconds`` of padded
        audio (a longer file goes alone): attention memory grows with the
        square of the length.

        Arguments
        ---------
        paths : list of str or os.PathLike
            Local audio files.
        batch_size : int
            Most files per batch.
        progress : bool
            Show a tqdm progress bar (on stderr).
        segments : list of tuple, optional
            One ``(start, stop)`` sample range per file (manifest rows), or
            None for whole files.
        return_layer_weights : bool
            Also return each file's layer significance (needs a backend
            with ``keeping_attention``, such as UniPool): its
            ``layer_attention_weights`` averaged over heads and valid frames.
        max_batch_seconds : float, optional
            Most seconds of padded audio per batch (default: no bound).

        Returns
        -------
        embeddings : torch.Tensor
            ``[N, E]`` float32 embeddings on the CPU.
        layer_weights : torch.Tensor
            ``[N, L]``, only with ``return_layer_weights``.

        Raises
        ------
        FileNotFoundError
            If a file is missing.
        AudioInputError
            If a file is unreadable, empty, too short, holds non-finite
            samples or gets a non-finite embedding.
        MemoryError
            When a batch does not fit in memory (naming its files).
        ValueError
            For an empty list, mismatched segments, or layer weights asked of
            a backend without them.
        """
        paths = [os.fspath(path) for path in paths]
        if not paths:
            raise ValueError("encode_files got no files")
        if segments is not None and len(segments) != len(paths):
            raise ValueError(f"{len(segments)} segments for {len(paths)} files")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        backend = self.mods.embedding_model
        if return_layer_weights and not hasattr(backend, "keeping_attention"):
            raise ValueError(
                f"{type(backend).__name__} has no layer attention weights"
            )
        segments = segments or [None] * len(paths)
        durations = [
            self._duration(path, segment)
            for path, segment in zip(paths, segments, strict=True)
        ]
        batches = duration_batches(
            durations, batch_size, max_batch_seconds or float("inf")
        )
        embeddings, layer_weights = None, None
        with tqdm(
            total=len(paths),
            unit="file",
            desc="embedding",
            disable=not progress,
        ) as bar:
            for rows in batches:
                signals = [self.read_audio(paths[i], segments[i]) for i in rows]
                wavs, wav_lens = pad_waveforms(signals)
                batch_embeddings, batch_weights = self._embed_checked(
                    wavs,
                    wav_lens,
                    return_layer_weights,
                    [paths[i] for i in rows],
                    unit="file(s)",
                    remedy="",
                )
                if embeddings is None:
                    embeddings = batch_embeddings.new_empty(
                        len(paths), batch_embeddings.shape[-1]
                    )
                embeddings[rows] = batch_embeddings
                if return_layer_weights:
                    if layer_weights is None:
                        layer_weights = batch_weights.new_empty(
                            len(paths), batch_weights.shape[-1]
                        )
                    layer_weights[rows] = batch_weights
                bar.update(len(rows))
        if return_layer_weights:
            return embeddings, layer_weights
        return embeddings

    # ---------------------------------------------------------------- helpers
    def _embed(self, wavs, wav_lens, keep_layer_weights=False):
        """Front-end then backend; optionally per-utterance layer weights."""
        for row, length in enumerate(sample_counts(wavs, wav_lens).tolist()):
            self._check_length(length, f"utterance {row} of the batch")
            if not bool(torch.isfinite(wavs[row, :length]).all()):
                raise AudioInputError(
                    f"utterance {row} of the batch holds NaN or infinite "
                    "samples"
                )
        if self.onnx_embedder is not None:
            return self._embed_onnx(wavs, wav_lens, keep_layer_weights), None
        wavs = wavs.to(self.device).float()
        wav_lens = wav_lens.to(self.device)
        backend = self.mods.embedding_model
        with torch.no_grad(), self.inference_ctx:
            feats, feat_lens = self.mods.front_end(wavs, wav_lens)
            if not keep_layer_weights:
                return _one_per_utterance(backend(feats, feat_lens)), None
            with backend.keeping_attention():
                embeddings = backend(feats, feat_lens).float()
                attention = backend.layer_attention_weights.float()
        # [B, H, L, T], zero at padded frames: mean over heads and valid frames
        frames = torch.round(feat_lens.float() * attention.shape[-1]).clamp(
            min=1
        )
        weights = attention.mean(dim=1).sum(dim=-1) / frames.unsqueeze(1)
        return embeddings, weights.cpu()

    def _as_batch(self, wavs, wav_lens):
        """Makes ``[B, S]`` waveforms and ``[B]`` relative lengths."""
        wavs = torch.as_tensor(wavs)
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        if wavs.dim() != 2:
            raise ValueError(
                f"wavs must be [batch, samples] or [samples], got shape "
                f"{tuple(wavs.shape)}"
            )
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        return wavs, torch.as_tensor(wav_lens, dtype=torch.float32)

    def _check_length(self, n_samples, where):
        """Raises AudioInputError for an empty or too-short signal."""
        check_length(n_samples, where, self.min_samples, self.sample_rate)

    def _duration(self, path, segment):
        """Duration in seconds of a file or segment (header only)."""
        return audio_duration(path, segment)

    def _decision_threshold(self, threshold):
        """The given threshold, or the calibrated one."""
        if threshold is None:
            threshold = self.threshold
        if threshold is None:
            raise ValueError(
                "no threshold given and the model folder has no calibrated "
                "'threshold'"
            )
        return float(threshold)


def _one_per_utterance(embeddings):
    """``[B, K, E]`` window sets (SincNet's ``eval_output: windows``) become
    their mean unit embedding ``[B, 1, E]``: a model folder scores trials by
    one cosine, the unclamped form of the authors' window-pair score."""
    embeddings = embeddings.float()
    if embeddings.shape[1] == 1:
        return embeddings
    return F.normalize(embeddings, dim=-1).mean(dim=1, keepdim=True)
