"""Silence removal before speaker embedding: offline voice activity detection.

:func:`speech_spans` finds the speech of a file (or of a segment of it) and
gives it as sample ranges of the file, so that the ``SpeakerVerifier``
(``unipool_lobes.inference.long_audio``) reads and embeds only those
ranges, concatenated. Two detectors, both offline:

* ``silero``: the ``silero-vad`` wheel's model (its weights ship in the
  wheel; loaded with its own ``load_silero_vad``, never downloaded). Its
  speech probability of each 32 ms frame (512 samples at 16 kHz) is
  computed block by block, the model's state carried across blocks, so the
  probabilities are those of one pass over the whole file; they become
  speech ranges with the wheel's own ``get_speech_timestamps_from_probs``
  (its defaults: threshold 0.5, 250 ms shortest speech, 100 ms shortest
  silence, 30 ms padding). The wheel's ``sequence`` ONNX model (one call
  per block of frames, the same probabilities as its streaming model)
  runs on onnxruntime; it needs a 16 kHz model rate.
* ``energy``: a frame-energy detector with no dependency. Frames of 25 ms
  every 10 ms; a frame's level is its RMS in dBFS (full scale 1.0). A frame
  is speech when its level is above ``max(peak - 40 dB, -50 dBFS)``, the
  peak being the file's loudest frame: a relative threshold follows the
  recording's gain, the absolute floor keeps a file of only background
  noise (or digital silence) speech-free. Runs of speech frames shorter
  than 100 ms are dropped (clicks), then each run is widened by a
  hangover of 200 ms after it and 50 ms before it (word endings and onsets
  are quieter than the vowels), and overlapping runs merge.

Both read the audio in blocks (60 s by default), so memory does not grow
with the file's length; only one number per frame is kept.

Measured effect (``tests/test_vad.py``: a 5.3 s LibriSpeech utterance cut
in two, with 5 s of -60 dBFS noise before, between and after; cosine to
the unpadded utterance's embedding, random-weight models): without a VAD
0.82 (tiny model) and 0.82 (base size); energy 0.986 and 0.970 (its
hangover keeps about 0.5 s of the noise); silero 0.995 and 0.995.

A file without speech is an :class:`AudioInputError` naming the file and
the detector (the CLI's exit code 2): embedding its noise instead would
give a confident score for nobody's voice.

Authors
 * unipool-sv developers 2026
"""

import math

import numpy as np
import torch

from unipool_lobes.inference.audio import (
    AudioInputError,
    audio_info,
    model_audio,
    read_file_samples,
)

__all__ = [
    "ENERGY_FLOOR_DB",
    "ENERGY_RANGE_DB",
    "VAD_CHOICES",
    "check_vad",
    "energy_speech_frames",
    "frames_to_spans",
    "speech_spans",
]


VAD_CHOICES = ("silero", "energy")

ENERGY_RANGE_DB = 40.0
ENERGY_FLOOR_DB = -50.0
_FRAME_SECONDS = 0.025
_HOP_SECONDS = 0.010
_SHORTEST_RUN_SECONDS = 0.100
_HANGOVER_SECONDS = 0.200
_ONSET_SECONDS = 0.050
_BLOCK_SECONDS = 60.0
_SILERO = {}


def check_vad(vad):
    """Checks a VAD name (``None`` is no VAD).

    Arguments
    ---------
    vad : str or None
        One of :data:`VAD_CHOICES`, or None.

    Returns
    -------
    str or None
        The name.

    Raises
    ------
    ValueError
        For any other value.

    Example
    -------
    >>> check_vad("energy"), check_vad(None)
    ('energy', None)
    """
    if vad is not None and vad not in VAD_CHOICES:
        raise ValueError(
            f"vad must be one of {VAD_CHOICES} or None, got {vad!r}"
        )
    return vad


def speech_spans(
    path, vad, audio_normalizer, segment=None, block_seconds=_BLOCK_SECONDS
):
    """The speech of a file as ``(start, stop)`` ranges of the file's samples.

    Arguments
    ---------
    path : str
        A local audio file.
    vad : str
        ``silero`` or ``energy`` (see the module docstring).
    audio_normalizer : speechbrain.dataio.preprocess.AudioNormalizer
        Resamples and down-mixes each block to the model's rate, at which
        the detector runs.
    segment : tuple of int, optional
        ``(start, stop)`` in samples of the file's rate: look only there.
    block_seconds : float
        Seconds of audio read at once.

    Returns
    -------
    list of tuple
        Sorted, disjoint ``(start, stop)`` ranges in samples of the file's
        own rate (absolute in the file, inside ``segment``); never empty.

    Raises
    ------
    AudioInputError
        If the file is unreadable or holds no speech.
    ValueError
        For an unknown detector, or ``silero`` at a model rate other than
        16 kHz.

    Example
    -------
    >>> from speechbrain.dataio.preprocess import AudioNormalizer
    >>> path = str(getfixture("tmp_path") / "a.wav")
    >>> tone = 0.1 * torch.sin(torch.arange(16000) * 0.2)
    >>> wave = torch.cat([torch.zeros(16000), tone, torch.zeros(16000)])
    >>> from speechbrain.dataio import audio_io
    >>> audio_io.save(path, wave.unsqueeze(0), 16000)
    >>> speech_spans(path, "energy", AudioNormalizer(16000))
    [(14880, 35440)]
    """
    check_vad(vad)
    rate = int(audio_normalizer.sample_rate)
    if vad == "silero" and rate != 16000:
        raise ValueError(
            f"the silero VAD needs a 16000 Hz model, not {rate} Hz"
        )
    info = audio_info(path)
    start, stop = (0, info.frames) if segment is None else segment
    start, stop, file_rate = int(start), int(stop), int(info.sample_rate)
    blocks = _blocks(
        path, start, stop, file_rate, audio_normalizer, block_seconds
    )
    if vad == "silero":
        spans = _silero_spans(blocks, rate)
    else:
        levels = torch.cat(list(_frame_levels(blocks, rate)))
        spans = frames_to_spans(energy_speech_frames(levels), rate)
    # model-rate samples of the segment -> samples of the file
    scale = file_rate / rate
    spans = [
        (start + round(a * scale), min(stop, start + round(b * scale)))
        for a, b in spans
    ]
    spans = [(a, b) for a, b in spans if b > a]
    if not spans:
        raise AudioInputError(
            f"{path}: the {vad} VAD found no speech in it (silence or "
            "background noise only); nothing to embed"
        )
    return spans


def energy_speech_frames(levels, sample_rate=16000):
    """Speech frames of the energy detector from frame levels in dBFS.

    Arguments
    ---------
    levels : torch.Tensor
        ``[F]`` RMS levels in dBFS of 25 ms frames every 10 ms.
    sample_rate : int
        Unused by the rule (frame counts are in 10 ms hops); kept for
        symmetry with :func:`frames_to_spans`.

    Returns
    -------
    torch.Tensor
        ``[F]`` bool, True for speech (after dropping short runs and adding
        the hangover).

    Example
    -------
    >>> levels = torch.full((100,), -60.0)
    >>> levels[40:60] = -20.0
    >>> mask = energy_speech_frames(levels)
    >>> int(mask.nonzero()[0]), int(mask.nonzero()[-1])
    (35, 79)
    """
    if levels.numel() == 0:
        return torch.zeros(0, dtype=torch.bool)
    threshold = max(float(levels.max()) - ENERGY_RANGE_DB, ENERGY_FLOOR_DB)
    loud = levels > threshold
    shortest = round(_SHORTEST_RUN_SECONDS / _HOP_SECONDS)
    after = round(_HANGOVER_SECONDS / _HOP_SECONDS)
    before = round(_ONSET_SECONDS / _HOP_SECONDS)
    mask = torch.zeros_like(loud)
    for first, last in _runs(loud):
        if last - first >= shortest:
            mask[max(0, first - before) : last + after] = True
    return mask


def frames_to_spans(mask, sample_rate):
    """Speech frames (25 ms every 10 ms) to merged sample ranges.

    Arguments
    ---------
    mask : torch.Tensor
        ``[F]`` bool speech frames.
    sample_rate : int
        The rate the frames were computed at.

    Returns
    -------
    list of tuple
        ``(start, stop)`` in samples at ``sample_rate``; a run of frames
        ``[a, b)`` covers ``a * hop`` to the end of frame ``b - 1``.

    Example
    -------
    >>> frames_to_spans(torch.tensor([False, True, True, False]), 16000)
    [(160, 720)]
    """
    hop = round(_HOP_SECONDS * sample_rate)
    frame = round(_FRAME_SECONDS * sample_rate)
    return [
        (first * hop, (last - 1) * hop + frame) for first, last in _runs(mask)
    ]


def _runs(mask):
    """``[first, last)`` of each run of True in a bool vector."""
    padded = torch.cat([torch.zeros(1, dtype=torch.int8), mask.to(torch.int8)])
    padded = torch.cat([padded, torch.zeros(1, dtype=torch.int8)])
    edges = torch.diff(padded)
    starts = (edges == 1).nonzero().flatten().tolist()
    stops = (edges == -1).nonzero().flatten().tolist()
    return list(zip(starts, stops, strict=True))


def _blocks(path, start, stop, file_rate, audio_normalizer, block_seconds):
    """Yields the range's audio, mono at the model rate, block by block.

    Blocks are a whole number of 10 ms hops and silero frames long at the
    model rate when the file is at the model rate."""
    step = max(1, math.ceil(block_seconds * file_rate / 512)) * 512
    for offset in range(start, stop, step):
        count = min(step, stop - offset)
        signal, read_rate = read_file_samples(path, offset, count)
        signal = model_audio(signal, read_rate, audio_normalizer, path)
        yield signal


def _frame_levels(blocks, rate):
    """Yields the RMS level in dBFS of 25 ms frames every 10 ms."""
    hop = round(_HOP_SECONDS * rate)
    frame = round(_FRAME_SECONDS * rate)
    carry = torch.zeros(0)
    total = 0
    for block in blocks:
        total += block.shape[0]
        signal = torch.cat([carry, block])
        count = (
            (signal.shape[0] - frame) // hop + 1
            if signal.shape[0] >= frame
            else 0
        )
        if count > 0:
            frames = signal[: (count - 1) * hop + frame].unfold(0, frame, hop)
            power = frames.double().pow(2).mean(dim=1)
            yield (10 * torch.log10(power + 1e-12)).float()
            carry = signal[count * hop :]
        else:
            carry = signal
    if total and carry.shape[0] and total < frame:
        power = carry.double().pow(2).mean()
        yield (10 * torch.log10(power + 1e-12)).float().reshape(1)


def _silero_model():
    """The wheel's silero model, loaded once (offline, bundled weights).

    Its ``sequence`` ONNX form: the streaming model's per-frame
    probabilities, bit for bit, from one call per block of frames."""
    if "model" not in _SILERO:
        threads = torch.get_num_threads()
        try:
            # silero_vad's model module sets torch to 1 thread on import
            from silero_vad import load_silero_vad
            from silero_vad.utils_vad import get_speech_timestamps_from_probs

            _SILERO["model"] = load_silero_vad(sequence=True)
            _SILERO["to_spans"] = get_speech_timestamps_from_probs
        finally:
            torch.set_num_threads(threads)
    return _SILERO["model"], _SILERO["to_spans"]


def _silero_spans(blocks, rate):
    """Silero speech ranges (model-rate samples) of a block stream.

    The frames of each block get the last 64 samples of the previous frame
    as context and the recurrent state of the previous block, as in one
    pass of the streaming model over the whole recording."""
    model, to_spans = _silero_model()
    size, context = 512, 64
    hidden = np.zeros((1, 1, 128), dtype=np.float32)
    cell = np.zeros((1, 1, 128), dtype=np.float32)
    previous = np.zeros(context, dtype=np.float32)
    probabilities, total, carry = [], 0, np.zeros(0, dtype=np.float32)
    for block in _with_end(blocks):
        if block is None:  # the end: the last, zero-padded frame
            if not carry.size:
                break
            block, carry = np.pad(carry, (0, size - carry.size)), carry[:0]
        else:
            total += block.shape[0]
            block = np.concatenate([carry, block.numpy().astype(np.float32)])
            whole = block.size // size * size
            block, carry = block[:whole], block[whole:]
            if not whole:
                continue
        frames = block.reshape(-1, size)
        contexts = np.concatenate([previous[None], frames[:-1, -context:]])
        previous = frames[-1, -context:].copy()
        values, hidden, cell = model.session.run(
            ["speech_probs", "hn", "cn"],
            {
                "input": np.concatenate([contexts, frames], axis=1),
                "h": hidden,
                "c": cell,
            },
        )
        probabilities += np.asarray(values).reshape(-1).tolist()
    found = to_spans(
        probabilities, sampling_rate=rate, audio_length_samples=total
    )
    return [(int(span["start"]), int(span["end"])) for span in found]


def _with_end(blocks):
    """The blocks, then None."""
    yield from blocks
    yield None
