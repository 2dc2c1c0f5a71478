"""Reading a segment of an audio file: the one reader of the package.

Training (the recipe's audio pipeline), the augmenter's noise and
reverberation pools and inference all read samples through
:func:`read_segment`, so a file that cannot be read gives the same error
naming it everywhere. It is SpeechBrain's ``audio_io.load`` (soundfile)
with a sample range; resampling and down-mixing stay with the callers,
which differ in what they accept (training refuses another rate,
inference resamples).

Authors
 * unipool-sv developers 2026
"""

import os

# The function itself: ``speechbrain.dataio.audio_io`` is a lazy module whose
# every attribute access inspects the caller's frame (about 0.1 ms).
from speechbrain.dataio.audio_io import load as load_audio

__all__ = ["read_mono_segment", "read_segment"]


def read_segment(path, start=0, num_frames=-1, channels_first=True):
    """Reads samples ``[start, start + num_frames)`` of an audio file.

    Arguments
    ---------
    path : str or os.PathLike
        The audio file.
    start : int
        First sample (of the file's own rate).
    num_frames : int
        Number of samples; -1 reads to the end. Fewer come back when the
        file is shorter.
    channels_first : bool
        ``[channels, time]`` (True) or ``[time, channels]``.

    Returns
    -------
    signal : torch.Tensor
        Float samples.
    sample_rate : int
        The file's sample rate.

    Raises
    ------
    ValueError
        Naming the file, when soundfile cannot read it (whatever the type
        of soundfile's error).

    Example
    -------
    >>> import torch
    >>> from speechbrain.dataio import audio_io
    >>> path = str(getfixture("tmp_path") / "a.wav")
    >>> audio_io.save(path, torch.arange(8.0).unsqueeze(0) / 8, 16000)
    >>> signal, rate = read_segment(path, start=2, num_frames=3)
    >>> signal.shape, rate
    (torch.Size([1, 3]), 16000)
    >>> read_segment(path + ".missing")
    Traceback (most recent call last):
    ...
    ValueError: ...a.wav.missing: unreadable audio (...)
    """
    path = os.fspath(path)
    try:
        return load_audio(
            path,
            frame_offset=int(start),
            num_frames=int(num_frames),
            channels_first=channels_first,
        )
    except Exception as error:  # soundfile raises several types
        raise ValueError(f"{path}: unreadable audio ({error})") from error


def read_mono_segment(path, start, num_frames, sample_rate):
    """Reads a segment at the expected rate, down-mixed to mono.

    Arguments
    ---------
    path : str or os.PathLike
        The audio file.
    start : int
        First sample.
    num_frames : int
        Number of samples (-1: to the end).
    sample_rate : int
        The rate the caller expects; another rate is an error (training
        data is prepared at the model's rate, never resampled on the fly).

    Returns
    -------
    torch.Tensor
        ``[num_frames]`` signal (fewer if the file is shorter).

    Raises
    ------
    ValueError
        If the file cannot be read or has another sample rate.

    Example
    -------
    >>> import torch
    >>> from speechbrain.dataio import audio_io
    >>> path = str(getfixture("tmp_path") / "b.wav")
    >>> audio_io.save(path, torch.zeros(2, 100), 16000)
    >>> read_mono_segment(path, 10, 50, 16000).shape
    torch.Size([50])
    >>> read_mono_segment(path, 0, -1, 8000)
    Traceback (most recent call last):
    ...
    ValueError: ...b.wav: sample rate 16000 Hz, the model expects 8000 Hz...
    """
    signal, file_rate = read_segment(path, start, num_frames)
    if file_rate != sample_rate:
        raise ValueError(
            f"{os.fspath(path)}: sample rate {file_rate} Hz, the model "
            f"expects {sample_rate} Hz; prepare the corpus with "
            f"sample_rate={sample_rate}"
        )
    return signal.mean(dim=0)
