"""Audio reading, checking and padding for the ``SpeakerVerifier``.

A local file of any sample rate and channel count is read, resampled and
down-mixed to a mono waveform at the model's rate, and a missing,
unreadable, non-finite, empty or too-short file is a clear error
(:class:`AudioInputError`). Waveforms are right-padded into batches with
SpeechBrain's ``batch_pad_right``.

Authors
 * unipool-sv developers 2026
"""

import os

import torch
from speechbrain.dataio import audio_io
from speechbrain.utils.data_utils import batch_pad_right

from unipool_lobes.dataio.audio_reading import read_segment

__all__ = [
    "AudioInputError",
    "audio_duration",
    "audio_info",
    "check_length",
    "minimum_input_samples",
    "model_audio",
    "pad_waveforms",
    "read_audio",
    "read_file_samples",
    "sample_counts",
]


class AudioInputError(ValueError):
    """An audio input that cannot be used: unreadable, empty or too short."""


def minimum_input_samples(front_end):
    """The fewest samples for which a front-end gives one frame.

    For a wav2vec2-style model it is the receptive field of its CNN
    feature encoder, from the config's ``conv_kernel`` and ``conv_stride``
    (400 samples, 25 ms at 16 kHz, for wav2vec 2.0, HuBERT and WavLM). A
    front-end may state its own with a ``minimum_samples`` attribute;
    otherwise 1.

    Arguments
    ---------
    front_end : torch.nn.Module
        The front-end (e.g. ``MultiLayerSSL``).

    Returns
    -------
    int
        The minimum number of samples.

    Example
    -------
    >>> from unipool_lobes.frontends.local_models import write_local_model
    >>> from unipool_lobes.frontends.ssl import MultiLayerSSL
    >>> ssl = MultiLayerSSL(write_local_model(str(getfixture("tmp_path"))))
    >>> minimum_input_samples(ssl)
    400
    >>> int(ssl.frame_lengths(399)), int(ssl.frame_lengths(400))
    (0, 1)
    """
    stated = getattr(front_end, "minimum_samples", None)
    if stated is not None:
        return int(stated)
    config = getattr(getattr(front_end, "model", None), "config", None)
    kernels = getattr(config, "conv_kernel", None)
    strides = getattr(config, "conv_stride", None)
    if not kernels or not strides:
        return 1
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        field += (kernel - 1) * jump
        jump *= stride
    return field


def check_length(n_samples, where, min_samples, sample_rate):
    """Raises AudioInputError for an empty or too-short signal.

    Arguments
    ---------
    n_samples : int
        The signal's length in samples.
    where : str
        What the signal is (a path), for the message.
    min_samples : int
        The fewest samples the model takes (:func:`minimum_input_samples`).
    sample_rate : int
        The model's sample rate, for the message.

    Raises
    ------
    AudioInputError
        If ``n_samples`` is 0 or below ``min_samples``.

    Example
    -------
    >>> check_length(400, "a.wav", 400, 16000)
    >>> try:
    ...     check_length(399, "a.wav", 400, 16000)
    ... except AudioInputError as error:
    ...     print(str(error).split(" is too short")[0])
    a.wav: 399 samples at 16000 Hz
    """
    if n_samples == 0:
        raise AudioInputError(f"{where}: the signal is empty")
    if n_samples < min_samples:
        raise AudioInputError(
            f"{where}: {n_samples} samples at {sample_rate} Hz is too "
            f"short; the model needs at least {min_samples} samples "
            f"({1000 * min_samples / sample_rate:g} ms), the "
            "receptive field of one frame of its front-end"
        )


def read_audio(path, audio_normalizer, min_samples, segment=None):
    """Reads (part of) an audio file as a mono CPU waveform, checked.

    Arguments
    ---------
    path : str or os.PathLike
        A local audio file.
    audio_normalizer : speechbrain.dataio.preprocess.AudioNormalizer
        Resamples to its ``sample_rate`` and down-mixes.
    min_samples : int
        The fewest samples the model takes.
    segment : tuple of int, optional
        ``(start, stop)`` in samples of the file's own rate.

    Returns
    -------
    torch.Tensor
        ``[S]`` float32 waveform at the normalizer's ``sample_rate``.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    AudioInputError
        If it is unreadable, empty or too short.

    Example
    -------
    >>> from speechbrain.dataio.preprocess import AudioNormalizer
    >>> path = str(getfixture("tmp_path") / "a.wav")
    >>> audio_io.save(path, torch.zeros(8000, 2), 8000, channels_first=False)
    >>> read_audio(path, AudioNormalizer(16000), 400).shape
    torch.Size([16000])
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    start, count = 0, -1
    if segment is not None:
        start, stop = (int(value) for value in segment)
        count = stop - start
    signal, rate = read_file_samples(path, start, count)
    signal = model_audio(signal, rate, audio_normalizer, path)
    check_length(
        signal.shape[0], path, min_samples, int(audio_normalizer.sample_rate)
    )
    return signal


def read_file_samples(path, start=0, num_frames=-1):
    """Reads samples of a file as ``[time, channels]``, at its own rate.

    Arguments
    ---------
    path : str
        A local audio file.
    start : int
        First sample.
    num_frames : int
        Number of samples (-1: to the end).

    Returns
    -------
    signal : torch.Tensor
        ``[time, channels]`` float samples.
    sample_rate : int
        The file's rate.

    Raises
    ------
    AudioInputError
        If the file cannot be read (the one reader,
        ``unipool_lobes.dataio.audio_reading.read_segment``).

    Example
    -------
    >>> path = str(getfixture("tmp_path") / "s.wav")
    >>> audio_io.save(path, torch.zeros(2, 100), 8000)
    >>> signal, rate = read_file_samples(path, 10, 20)
    >>> tuple(signal.shape), rate
    ((20, 2), 8000)
    """
    try:
        return read_segment(path, start, num_frames, channels_first=False)
    except ValueError as error:
        cause = error.__cause__ or error
        raise AudioInputError(f"cannot read audio file {path}: {cause}") from (
            error
        )


def model_audio(signal, rate, audio_normalizer, path):
    """Checks samples and makes them a mono waveform at the model's rate.

    Arguments
    ---------
    signal : torch.Tensor
        ``[time, channels]`` samples as read.
    rate : int
        Their sample rate.
    audio_normalizer : speechbrain.dataio.preprocess.AudioNormalizer
        Resamples to its ``sample_rate`` and down-mixes.
    path : str
        The file, for the message.

    Returns
    -------
    torch.Tensor
        ``[S]`` float32 waveform.

    Raises
    ------
    AudioInputError
        If a sample is NaN or infinite.

    Example
    -------
    >>> from speechbrain.dataio.preprocess import AudioNormalizer
    >>> signal = torch.ones(8000, 2)
    >>> model_audio(signal, 8000, AudioNormalizer(16000), "x").shape
    torch.Size([16000])
    """
    if not bool(torch.isfinite(signal).all()):
        raise AudioInputError(
            f"{path}: holds NaN or infinite samples (corrupt audio)"
        )
    signal = audio_normalizer(signal.float(), rate)
    if signal.dim() != 1:
        signal = signal.reshape(signal.shape[0], -1).mean(dim=1)
    return signal


def audio_info(path):
    """The header of an audio file (frames, sample rate, channels).

    Arguments
    ---------
    path : str
        A local audio file.

    Returns
    -------
    object
        SpeechBrain's ``audio_io.info`` record (``frames``,
        ``sample_rate``, ``channels``).

    Raises
    ------
    AudioInputError
        If the header cannot be read.

    Example
    -------
    >>> path = str(getfixture("tmp_path") / "h.wav")
    >>> audio_io.save(path, torch.zeros(1, 800), 8000)
    >>> info = audio_info(path)
    >>> info.frames, info.sample_rate
    (800, 8000)
    """
    try:
        return audio_io.info(path)
    except Exception as error:
        raise AudioInputError(
            f"cannot read audio file {path}: {error}"
        ) from error


def audio_duration(path, segment=None):
    """Duration in seconds of a file or segment (header only).

    Arguments
    ---------
    path : str
        A local audio file.
    segment : tuple of int, optional
        ``(start, stop)`` in samples of the file's own rate.

    Returns
    -------
    float
        The duration in seconds.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    AudioInputError
        If its header is unreadable.

    Example
    -------
    >>> path = str(getfixture("tmp_path") / "a.wav")
    >>> audio_io.save(path, torch.zeros(1, 8000), 16000)
    >>> audio_duration(path), audio_duration(path, (0, 4000))
    (0.5, 0.25)
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    info = audio_info(path)
    frames = info.frames
    if segment is not None:
        frames = int(segment[1]) - int(segment[0])
    return frames / info.sample_rate


def pad_waveforms(signals):
    """Right-pads 1-D waveforms into a batch with relative lengths.

    SpeechBrain's ``batch_pad_right``: its relative lengths (a float64
    quotient rounded to float32) equal the float32 quotient of the sample
    counts for any signal under 2**24 samples.

    Arguments
    ---------
    signals : list of torch.Tensor
        ``[S_i]`` waveforms.

    Returns
    -------
    wavs : torch.Tensor
        ``[B, max S_i]`` zero-padded waveforms.
    wav_lens : torch.Tensor
        ``[B]`` float32 lengths relative to the longest.

    Example
    -------
    >>> wavs, lens = pad_waveforms([torch.ones(4), torch.ones(2)])
    >>> wavs.tolist(), lens.tolist()
    ([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]], [1.0, 0.5])
    """
    return batch_pad_right(list(signals))


def sample_counts(wavs, wav_lens):
    """Relative lengths -> sample counts, as the SSL front-end rounds them.

    Arguments
    ---------
    wavs : torch.Tensor
        ``[B, S]`` padded waveforms.
    wav_lens : torch.Tensor
        ``[B]`` lengths relative to ``S``.

    Returns
    -------
    torch.Tensor
        ``[B]`` int64 sample counts.

    Example
    -------
    >>> sample_counts(torch.zeros(2, 4), torch.tensor([1.0, 0.5])).tolist()
    [4, 2]
    """
    return torch.round(wav_lens.double().cpu() * wavs.shape[1]).long()
