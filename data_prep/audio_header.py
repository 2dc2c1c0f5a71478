"""Audio file headers: length, sample rate and channels without decoding.

WAV files have their RIFF chunks parsed directly: one 4 kB read for usual
files, several times faster than ``soundfile.info``, and a copy shorter
than its header says is caught. Other formats (FLAC...) go through
soundfile's header reader; since a truncated FLAC file keeps a header
announcing the samples it lost, :func:`check_last_sample` decodes the last
one, at a fraction of a full decode's cost.

Every error is a ``ValueError`` whose message starts with the file's path,
whatever went wrong: missing file, broken link, folder, named pipe (never
waited on), unreadable permissions, empty file, not audio, no samples,
truncated.

Authors
 * unipool-sv developers 2026
"""

import os
import stat
import struct
from collections import namedtuple

import soundfile

AudioInfo = namedtuple("AudioInfo", ["frames", "sample_rate", "channels"])

HEADER_BYTES = 4096
# WAVE format tags whose block_align is exactly one frame.
PCM_FORMAT_TAGS = (0x0001, 0x0003, 0xFFFE)  # PCM, IEEE float, extensible
UNKNOWN_DATA_SIZES = (0, 0xFFFFFFFF)  # written by streaming encoders
# What libsndfile reports for a FLAC header whose sample count is 0
# (unknown, per the FLAC format): the largest int64.
UNKNOWN_FRAMES = 2**63 - 1


def audio_info(path):
    """Reads an audio file's length, sample rate and channels.

    Plain PCM or float WAV files are read from their RIFF header; other
    files (FLAC, RF64, compressed WAV...) through soundfile. Nothing is
    decoded (see :func:`check_last_sample` for compressed files).

    Arguments
    ---------
    path : str or path
        Any format soundfile reads (wav, flac, ...).

    Returns
    -------
    AudioInfo
        ``(frames, sample_rate, channels)``.

    Raises
    ------
    ValueError
        When the file cannot be opened or read as audio, holds no samples,
        or is a WAV file shorter than its header says (a truncated copy);
        the message names the file.

    Example
    -------
    >>> import numpy
    >>> folder = getfixture("tmp_path")
    >>> soundfile.write(folder / "a.wav", numpy.zeros((800, 2)), 16000)
    >>> audio_info(folder / "a.wav")
    AudioInfo(frames=800, sample_rate=16000, channels=2)
    >>> soundfile.write(folder / "b.flac", numpy.zeros(320), 8000)
    >>> audio_info(folder / "b.flac")
    AudioInfo(frames=320, sample_rate=8000, channels=1)
    >>> _ = (folder / "c.wav").write_text("not audio")
    >>> try:
    ...     audio_info(folder / "c.wav")
    ... except ValueError as error:
    ...     print(str(error).startswith(f"{folder / 'c.wav'}: unreadable"))
    True
    """
    info = _riff_info(path)
    if info is None:
        info = _soundfile_info(path)
    if info.frames <= 0:
        raise ValueError(f"{path}: no audio samples")
    return info


def _riff_info(path):
    """The AudioInfo of a plain RIFF/WAVE PCM file; None for other files."""
    try:
        # Non-blocking: opening a named pipe must not wait for a writer.
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            status = os.fstat(handle)
            if not stat.S_ISREG(status.st_mode):
                kind = "a folder"
                if not stat.S_ISDIR(status.st_mode):
                    kind = "a pipe, socket or device"
                raise ValueError(f"{path}: unreadable audio ({kind})")
            if status.st_size == 0:
                raise ValueError(f"{path}: empty file (0 bytes)")
            head = os.read(handle, HEADER_BYTES)
            if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            parsed = _parse_chunks(handle, head, status.st_size)
        finally:
            os.close(handle)
    except OSError as error:  # missing, broken link, permissions
        raise ValueError(f"{path}: unreadable audio ({error})") from error
    if parsed is None:
        return None
    (tag, channels, rate, block_align), data_offset, data_size = parsed
    if tag not in PCM_FORMAT_TAGS or min(block_align, channels, rate) <= 0:
        return None
    available = status.st_size - data_offset
    if data_size in UNKNOWN_DATA_SIZES:
        data_size = available
    elif data_size > available:
        raise ValueError(
            f"{path}: truncated, the header announces {data_size} bytes of "
            f"samples but the file holds {available}"
        )
    return AudioInfo(data_size // block_align, rate, channels)


def _parse_chunks(handle, head, file_size):
    """``(fmt fields, data offset, data size)`` or None if unusual."""
    fmt = None
    position = 12
    while position + 8 <= file_size:
        if position + 8 <= len(head):
            chunk = head[position : position + 8]
        else:
            chunk = os.pread(handle, 8, position)
        if len(chunk) < 8:
            return None
        name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if name == b"fmt ":
            if position + 24 <= len(head):
                body = head[position + 8 : position + 24]
            else:
                body = os.pread(handle, 16, position + 8)
            if len(body) < 16:
                return None
            tag, channels, rate, _, block_align = struct.unpack(
                "<HHIIH", body[:14]
            )
            fmt = (tag, channels, rate, block_align)
        elif name == b"data":
            return (fmt, position + 8, size) if fmt else None
        position += 8 + size + (size & 1)
    return None


def _soundfile_info(path):
    """AudioInfo from soundfile's header reader, for a regular, non-empty
    file (checked by :func:`_riff_info`)."""
    try:
        info = soundfile.info(str(path))
    except Exception as error:  # soundfile raises several types
        # libsndfile's own words (for some content it blames the file's
        # existence), less the path.
        reason = str(error).replace(f"Error opening {str(path)!r}: ", "")
        raise ValueError(
            f"{path}: unreadable audio, not a format soundfile reads ({reason})"
        ) from error
    if info.frames >= UNKNOWN_FRAMES:
        raise ValueError(
            f"{path}: the header gives no length (an empty or streamed "
            "file); re-encode it"
        )
    return AudioInfo(info.frames, info.samplerate, info.channels)


def check_last_sample(path, frames):
    """Checks that the last sample a header announces can be decoded.

    A truncated compressed file (FLAC) keeps a header announcing every
    sample; seeking to its last one and decoding it fails. This costs a
    seek and one frame's decode, a fraction of decoding the whole file,
    and catches truncation (not corruption in the middle of a file).

    Arguments
    ---------
    path : str or path
        An audio file.
    frames : int
        The number of samples its header announces.

    Raises
    ------
    ValueError
        When the last sample cannot be decoded; the message names the file.

    Example
    -------
    >>> import numpy
    >>> path = getfixture("tmp_path") / "a.flac"
    >>> soundfile.write(path, numpy.random.rand(16000) - 0.5, 16000)
    >>> check_last_sample(path, 16000)
    >>> _ = path.write_bytes(path.read_bytes()[:5000])
    >>> try:
    ...     check_last_sample(path, 16000)
    ... except ValueError as error:
    ...     print(str(error)[len(str(path)) :][:22])
    : truncated or corrupt
    """
    try:
        with soundfile.SoundFile(str(path)) as source:
            source.seek(frames - 1)
            n_read, reason = len(source.read(1, dtype="int16")), ""
    except Exception as error:  # soundfile raises several types
        n_read, reason = 0, f" ({error})"
    if n_read != 1:
        raise ValueError(
            f"{path}: truncated or corrupt, the header announces {frames} "
            f"samples but the last cannot be decoded{reason}"
        )
