"""Long recordings with bounded memory, and silence removal, for embedding.

A wav2vec2-style model's activations grow with the length of its input
(attention is quadratic in it): embedding a recording whole takes about
0.5 GB per 35 s with a base model. :class:`LongAudioMixin` (a base class
of ``SpeakerVerifier``) embeds a recording longer than a window
(``chunk_seconds``, default 10 s) window by window instead:

* **Windows.** Every window is exactly ``chunk_seconds`` long; consecutive
  windows overlap by ``chunk_overlap_seconds`` (default a tenth of the
  window, 1 s), so each
  frame near a window's edge also lies well inside another window. The
  last window is shifted back to end at the recording's end: it overlaps
  its neighbour more rather than being a short tail (a 1 s tail would
  get a noisy embedding and, weighted by its length or not, add nothing
  reliable). So no window is shorter than the window length, and a
  recording just over the window gets two windows.
* **Reading.** Only the samples of the windows being embedded are read
  from disk (``frame_offset``/``num_frames`` reads): at most
  ``chunk_batch_size`` windows at once, never the whole file, so memory
  does not grow with the length.
* **Combination.** Each window's embedding is L2-normalised and the unit
  vectors are averaged, weighted by the share of the recording each window
  stands for: the samples nearer to its centre than to its neighbours'
  (an overlap is split at its middle, so the weights add up to the
  recording's length and reversing the audio gives the same weights).
  Normalising first keeps a window's norm (which tracks loudness and
  content, not identity) out of the average, as the SincNet window sets of
  ``SpeakerVerifier`` are averaged. The result is a direction (norm at
  most 1): trials are scored by the cosine, which ignores the scale.
  Layer weights (``return_layer_weights``) are averaged with the same
  weights.
* **Window length.** 10 s by default: with a base-size model on CPU the
  peak resident memory is 1.42 GB with 10 s windows and 1.64 GB with 20 s
  ones, of which 1.19 GB is the loaded model (``benchmarks/
  bench_long_audio.py``), and 10 s is longer than most verification
  trials' utterances. Shorter windows cost little: the overlap is a tenth
  of the window whatever its length.
* **Short recordings.** A recording not longer than the window goes
  through ``encode_files``'s own batched path, untouched: exactly today's
  embedding. ``chunk_seconds=None`` embeds every file whole, as before.

**Silence removal** (``vad="silero"`` or ``"energy"``, see
``unipool_lobes.inference.vad``): the detector gives the speech as sample
ranges of the file; these are concatenated (a virtual stream of speech)
and the stream is embedded as a recording: whole if not longer than the
window (batched with the other files by duration), window by window
otherwise, the windows reading only their pieces of the speech ranges.
Concatenating keeps one embedding per file for any number of speech
ranges, and short ranges get the context of their neighbours. A file with
no speech is an error naming it (``AudioInputError``).

The options reach the CLI as ``--chunk-seconds`` (``0`` or ``none``: whole
files), ``--chunk-overlap-seconds`` and ``--vad``
(``unipool_lobes.inference.cli_long_audio``); ``unipool-sv score`` keeps
whole utterances unless given ``--chunk-seconds``, so that a trial list is
evaluated as the recipes' test stage and the papers evaluate it.

Authors
 * unipool-sv developers 2026
"""

import functools
import math
import os

import torch
import torch.nn.functional as F
from tqdm import tqdm

from unipool_lobes.dataio.batching import duration_batches, is_out_of_memory
from unipool_lobes.inference.audio import (
    AudioInputError,
    audio_info,
    check_length,
    model_audio,
    pad_waveforms,
    read_file_samples,
)
from unipool_lobes.inference.vad import check_vad, speech_spans

__all__ = [
    "DEFAULT_CHUNK_BATCH_SIZE",
    "DEFAULT_CHUNK_OVERLAP_SECONDS",
    "DEFAULT_CHUNK_SECONDS",
    "LongAudioMixin",
    "chunk_windows",
    "combine_windows",
    "long_audio_aware",
    "read_spans",
    "window_weights",
]


DEFAULT_CHUNK_SECONDS = 10.0
DEFAULT_CHUNK_OVERLAP_SECONDS = None  # a tenth of the window
DEFAULT_CHUNK_BATCH_SIZE = 1


def chunk_windows(n_samples, window, overlap):
    """The ``(start, stop)`` windows of a recording of ``n_samples``.

    Arguments
    ---------
    n_samples : int
        The recording's length.
    window : int
        The window length (samples).
    overlap : int
        The overlap of consecutive windows (samples), below ``window``.

    Returns
    -------
    list of tuple
        One ``(0, n_samples)`` window when the recording is not longer
        than ``window``; otherwise windows of exactly ``window`` samples,
        ``window - overlap`` apart, the last ending at ``n_samples``.

    Example
    -------
    >>> chunk_windows(25, 10, 2)
    [(0, 10), (8, 18), (15, 25)]
    >>> chunk_windows(7, 10, 2)
    [(0, 7)]
    """
    if n_samples <= window:
        return [(0, n_samples)]
    hop = window - overlap
    count = math.ceil((n_samples - window) / hop) + 1
    starts = [min(index * hop, n_samples - window) for index in range(count)]
    return [(start, start + window) for start in starts]


def window_weights(windows, n_samples):
    """Each window's share of the recording (overlaps split at the middle).

    Arguments
    ---------
    windows : list of tuple
        ``(start, stop)`` windows in order (:func:`chunk_windows`).
    n_samples : int
        The recording's length.

    Returns
    -------
    torch.Tensor
        ``[K]`` float64 weights adding up to 1.

    Example
    -------
    >>> window_weights([(0, 10), (8, 18), (15, 25)], 25).tolist()
    [0.36, 0.3, 0.34]
    """
    bounds = [0.0]
    for (_, stop), (start, _) in zip(windows[:-1], windows[1:], strict=True):
        bounds.append((stop + start) / 2)
    bounds.append(float(n_samples))
    shares = torch.tensor(bounds, dtype=torch.float64).diff()
    return shares / n_samples


def combine_windows(embeddings, weights):
    """The weighted mean of the windows' unit embeddings.

    Arguments
    ---------
    embeddings : torch.Tensor
        ``[K, E]`` window embeddings.
    weights : torch.Tensor
        ``[K]`` weights adding up to 1 (:func:`window_weights`).

    Returns
    -------
    torch.Tensor
        ``[E]`` float32 combined embedding.

    Example
    -------
    >>> combine_windows(
    ...     torch.tensor([[3.0, 0.0], [0.0, 0.5]]), torch.tensor([0.5, 0.5])
    ... ).tolist()
    [0.5, 0.5]
    """
    units = F.normalize(embeddings.double(), dim=-1)
    return (weights.double().unsqueeze(1) * units).sum(dim=0).float()


def read_spans(path, spans, audio_normalizer):
    """Reads only the given sample ranges of a file, concatenated.

    Arguments
    ---------
    path : str
        A local audio file.
    spans : list of tuple
        ``(start, stop)`` ranges in samples of the file's own rate.
    audio_normalizer : speechbrain.dataio.preprocess.AudioNormalizer
        Resamples to the model's rate and down-mixes.

    Returns
    -------
    torch.Tensor
        ``[S]`` float32 mono waveform at the model's rate.

    Raises
    ------
    AudioInputError
        If the file is unreadable or holds non-finite samples.

    Example
    -------
    >>> from speechbrain.dataio.preprocess import AudioNormalizer
    >>> path = str(getfixture("tmp_path") / "a.wav")
    >>> from speechbrain.dataio import audio_io
    >>> audio_io.save(path, torch.arange(10.0).unsqueeze(0) / 16, 16000)
    >>> (
    ...     read_spans(path, [(1, 3), (6, 8)], AudioNormalizer(16000)) * 16
    ... ).tolist()
    [1.0, 2.0, 6.0, 7.0]
    """
    pieces, rate = [], None
    for start, stop in spans:
        piece, rate = read_file_samples(path, start, int(stop) - int(start))
        pieces.append(piece)
    return model_audio(torch.cat(pieces), rate, audio_normalizer, path)


def long_audio_aware(encode_files):
    """Decorates ``encode_files``: long files by windows, optional VAD.

    The decorated method keeps the signature and behaviour of
    ``encode_files`` for files not longer than the window when no VAD is
    set (they go through it unchanged); see :class:`LongAudioMixin`.

    Arguments
    ---------
    encode_files : callable
        ``SpeakerVerifier.encode_files``.

    Returns
    -------
    callable
        The decorated method.

    Example
    -------
    >>> def encode(
    ...     self,
    ...     paths,
    ...     batch_size=16,
    ...     progress=True,
    ...     segments=None,
    ...     return_layer_weights=False,
    ...     max_batch_seconds=None,
    ... ):
    ...     return "whole"
    >>> class Verifier:
    ...     def _long_audio_plan(self, paths, segments, options):
    ...         return None
    >>> long_audio_aware(encode)(Verifier(), ["a.wav"])
    'whole'
    """

    @functools.wraps(encode_files)
    def wrapper(
        self,
        paths,
        batch_size=16,
        progress=True,
        segments=None,
        return_layer_weights=False,
        max_batch_seconds=None,
    ):
        options = {
            "batch_size": batch_size,
            "return_layer_weights": return_layer_weights,
            "max_batch_seconds": max_batch_seconds,
        }
        plan = self._long_audio_plan(paths, segments, options)
        if plan is None:
            return encode_files(
                self, paths, progress=progress, segments=segments, **options
            )
        return self._encode_planned(encode_files, plan, progress, options)

    return wrapper


class LongAudioMixin:
    """Chunked embedding of long recordings and silence removal.

    A base class of ``SpeakerVerifier``; see the module docstring for the
    design. The options are attributes set by :meth:`configure_long_audio`
    (class defaults: 10 s windows, 1 s overlap, one window per forward,
    no VAD; the overlap defaults to a tenth of the window) and used by
    ``encode_files`` and everything built on it.

    Example
    -------
    >>> from unipool_lobes.frontends.local_models import write_local_model
    >>> from unipool_lobes.frontends.ssl import MultiLayerSSL
    >>> from unipool_lobes.inference.speaker import SpeakerVerifier
    >>> from unipool_lobes.models.unipool.model import UniPool
    >>> tmp = getfixture("tmp_path")
    >>> verifier = SpeakerVerifier(
    ...     modules={
    ...         "front_end": MultiLayerSSL(write_local_model(str(tmp))),
    ...         "embedding_model": UniPool(32, 2, conv_channels=8),
    ...     },
    ...     hparams={},
    ...     run_opts={"device": "cpu"},
    ... )
    >>> path = str(tmp / "long.wav")
    >>> from speechbrain.dataio import audio_io
    >>> audio_io.save(path, torch.randn(1, 40000) * 0.1, 16000)
    >>> verifier = verifier.configure_long_audio(chunk_seconds=1.0)
    >>> verifier.encode_files([path], progress=False).shape
    torch.Size([1, 192])
    """

    chunk_seconds = DEFAULT_CHUNK_SECONDS
    chunk_overlap_seconds = DEFAULT_CHUNK_SECONDS / 10
    chunk_batch_size = DEFAULT_CHUNK_BATCH_SIZE
    vad = None

    def configure_long_audio(
        self,
        chunk_seconds=DEFAULT_CHUNK_SECONDS,
        chunk_overlap_seconds=DEFAULT_CHUNK_OVERLAP_SECONDS,
        chunk_batch_size=DEFAULT_CHUNK_BATCH_SIZE,
        vad=None,
    ):
        """Sets the window, overlap, windows per forward and VAD.

        Arguments
        ---------
        chunk_seconds : float or None
            Window length; a longer recording is embedded window by
            window. None (or 0): every recording whole, as before.
        chunk_overlap_seconds : float, optional
            Overlap of consecutive windows, at least 0 and at most half
            the window; None: a tenth of the window.
        chunk_batch_size : int
            Windows embedded in one forward pass (memory grows with it).
        vad : str or None
            ``silero``, ``energy`` or None (no silence removal).

        Returns
        -------
        LongAudioMixin
            ``self``, configured.

        Raises
        ------
        ValueError
            For a non-finite or negative window, a window shorter than one
            frame of the model, an overlap out of range, a batch size
            below 1, or an unknown VAD.

        Example
        -------
        >>> class Verifier(LongAudioMixin):
        ...     sample_rate, min_samples = 16000, 400
        >>> Verifier().configure_long_audio(10.0, 1.0).chunk_seconds
        10.0
        """
        check_vad(vad)
        if chunk_seconds is not None:
            chunk_seconds = float(chunk_seconds)
            if not math.isfinite(chunk_seconds) or chunk_seconds < 0:
                raise ValueError(
                    f"chunk_seconds must be a finite number >= 0 or None, "
                    f"got {chunk_seconds}"
                )
            if chunk_seconds == 0:
                chunk_seconds = None
        overlap = chunk_overlap_seconds
        if overlap is None:
            overlap = 0.0 if chunk_seconds is None else chunk_seconds / 10
        overlap = float(overlap)
        if chunk_seconds is not None:
            window = round(chunk_seconds * self.sample_rate)
            if window < self.min_samples:
                raise ValueError(
                    f"chunk_seconds {chunk_seconds:g} is shorter than one "
                    f"frame of the model ({self.min_samples} samples at "
                    f"{self.sample_rate} Hz)"
                )
            if not 0 <= overlap <= chunk_seconds / 2:
                raise ValueError(
                    f"chunk_overlap_seconds must be between 0 and half the "
                    f"window ({chunk_seconds / 2:g} s), got {overlap:g}"
                )
        if int(chunk_batch_size) != chunk_batch_size or chunk_batch_size < 1:
            raise ValueError(
                f"chunk_batch_size must be an integer >= 1, got "
                f"{chunk_batch_size}"
            )
        self.chunk_seconds = chunk_seconds
        self.chunk_overlap_seconds = overlap
        self.chunk_batch_size = int(chunk_batch_size)
        self.vad = vad
        return self

    def _long_audio_plan(self, paths, segments, options):
        """None (today's path) or ``(paths, segments, items)``.

        An item is ``(kind, spans, rate)``: kind ``whole`` (today's path),
        ``speech`` (VAD ranges, embedded at once) or ``windows``. Bad
        arguments give None: ``encode_files`` raises its own errors."""
        if self.chunk_seconds is None and self.vad is None:
            return None
        paths = [os.fspath(path) for path in paths]
        backend = self.mods.embedding_model
        if (
            not paths
            or (segments is not None and len(segments) != len(paths))
            or options["batch_size"] < 1
            or (
                options["return_layer_weights"]
                and not hasattr(backend, "keeping_attention")
            )
        ):
            return None
        segments = segments or [None] * len(paths)
        items = []
        for path, segment in zip(paths, segments, strict=True):
            items.append(self._plan_item(path, segment))
        if all(kind == "whole" for kind, _, _ in items):
            return None
        return paths, segments, items

    def _plan_item(self, path, segment):
        """How one file is embedded (see ``_long_audio_plan``): a file is
        long when its (speech) duration exceeds ``chunk_seconds``."""
        seconds = self._duration(path, segment)  # missing, unreadable: errors
        if self.vad is None and seconds <= self.chunk_seconds:
            return "whole", None, None  # no second header read
        info = audio_info(path)
        rate = int(info.sample_rate)
        span = (0, info.frames) if segment is None else segment
        spans = [(int(span[0]), int(span[1]))]
        if self.vad is not None:
            spans = speech_spans(path, self.vad, self.audio_normalizer, span)
            seconds = sum(stop - start for start, stop in spans) / rate
        if self.chunk_seconds is not None and seconds > self.chunk_seconds:
            return "windows", spans, rate
        return ("speech" if self.vad else "whole"), spans, rate

    def _encode_planned(self, encode_whole, plan, progress, options):
        """Embeds the files of a plan; as ``encode_files`` returns."""
        paths, segments, items = plan
        with_weights = options["return_layer_weights"]
        results = [None] * len(paths)
        with tqdm(
            total=len(paths),
            unit="file",
            desc="embedding",
            disable=not progress,
        ) as bar:
            rows = [i for i, item in enumerate(items) if item[0] == "whole"]
            if rows:
                found = encode_whole(
                    self,
                    [paths[i] for i in rows],
                    progress=False,
                    segments=[segments[i] for i in rows],
                    **options,
                )
                found = found if with_weights else (found, None)
                for j, i in enumerate(rows):
                    results[i] = (found[0][j], _row(found[1], j))
                bar.update(len(rows))
            rows = [i for i, item in enumerate(items) if item[0] == "speech"]
            for batch in self._speech_batches(rows, items, options):
                found = self._embed_speech(paths, items, batch, with_weights)
                for i, result in zip(batch, found, strict=True):
                    results[i] = result
                bar.update(len(batch))
            for i, (kind, spans, rate) in enumerate(items):
                if kind == "windows":
                    results[i] = self._embed_windows(
                        paths[i], spans, rate, with_weights
                    )
                    bar.update(1)
        embeddings = torch.stack([result[0] for result in results])
        if with_weights:
            return embeddings, torch.stack([result[1] for result in results])
        return embeddings

    def _speech_batches(self, rows, items, options):
        """Batches of VAD-trimmed files by duration, as ``encode_files``."""
        if not rows:
            return []
        durations = [
            sum(b - a for a, b in items[i][1]) / items[i][2] for i in rows
        ]
        batches = duration_batches(
            durations,
            options["batch_size"],
            options["max_batch_seconds"] or float("inf"),
        )
        return [[rows[j] for j in batch] for batch in batches]

    def _embed_speech(self, paths, items, batch, with_weights):
        """Embeds VAD-trimmed files together: ``[(embedding, weights)]``."""
        signals = []
        for i in batch:
            signal = read_spans(paths[i], items[i][1], self.audio_normalizer)
            check_length(
                signal.shape[0],
                f"{paths[i]} (its speech after the {self.vad} VAD)",
                self.min_samples,
                self.sample_rate,
            )
            signals.append(signal)
        wavs, wav_lens = pad_waveforms(signals)
        embeddings, weights = self._embed_checked(
            wavs, wav_lens, with_weights, [paths[i] for i in batch]
        )
        return [(embeddings[j], _row(weights, j)) for j in range(len(batch))]

    def _embed_windows(self, path, spans, rate, with_weights):
        """One file window by window: ``(embedding [E], weights [L])``."""
        total = sum(stop - start for start, stop in spans)
        window = round(self.chunk_seconds * rate)
        overlap = round(self.chunk_overlap_seconds * rate)
        windows = chunk_windows(total, window, overlap)
        weights = window_weights(windows, total)
        embedding, layer_weights = 0.0, 0.0
        step = self.chunk_batch_size
        for first in range(0, len(windows), step):
            group = windows[first : first + step]
            signals = [
                read_spans(path, _pieces(spans, a, b), self.audio_normalizer)
                for a, b in group
            ]
            wavs, wav_lens = pad_waveforms(signals)
            found, found_weights = self._embed_checked(
                wavs, wav_lens, with_weights, [path] * len(group)
            )
            share = weights[first : first + step]
            embedding = embedding + combine_windows(found, share).double()
            if with_weights:
                layer_weights = layer_weights + (
                    share.unsqueeze(1) * found_weights.double()
                ).sum(dim=0)
        if not with_weights:
            return embedding.float(), None
        return embedding.float(), layer_weights.float()

    def _embed_checked(
        self,
        wavs,
        wav_lens,
        with_weights,
        names,
        unit="window(s)",
        remedy="; use a smaller chunk_seconds",
    ):
        """``_embed`` with the out-of-memory and non-finite checks, for
        windows and (``encode_files``) whole files; ``names`` names each
        row."""
        try:
            embeddings, weights = self._embed(wavs, wav_lens, with_weights)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            raise MemoryError(
                f"out of memory embedding {len(names)} {unit} of up to "
                f"{wavs.shape[1] / self.sample_rate:.1f} s (first "
                f"{names[0]}){remedy}"
            ) from error
        embeddings = embeddings.squeeze(1).cpu()
        finite = torch.isfinite(embeddings).all(dim=1)
        if not bool(finite.all()):
            bad = names[int((~finite).nonzero()[0])]
            raise AudioInputError(
                f"{bad}: its embedding is not finite (NaN or inf); the "
                "model or its checkpoint is broken"
            )
        return embeddings, weights


def _row(tensor, index):
    """Row ``index`` of a tensor, or None."""
    return None if tensor is None else tensor[index]


def _pieces(spans, start, stop):
    """The file ranges holding samples ``[start, stop)`` of the spans'
    concatenation."""
    pieces, offset = [], 0
    for a, b in spans:
        length = b - a
        low, high = max(start, offset), min(stop, offset + length)
        if low < high:
            pieces.append((a + low - offset, a + high - offset))
        offset += length
        if offset >= stop:
            break
    return pieces
