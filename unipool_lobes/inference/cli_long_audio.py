"""The long-audio and silence-removal options of the ``unipool-sv`` commands.

``--chunk-seconds``, ``--chunk-overlap-seconds`` and ``--vad`` (added by
:func:`add_long_audio_options` to every command that loads a model) and
:func:`configure_from_args`, which sets them on a loaded
``SpeakerVerifier`` (see ``unipool_lobes.inference.long_audio``).

Authors
 * unipool-sv developers 2026
"""

import argparse
import math

from unipool_lobes.inference.long_audio import (
    DEFAULT_CHUNK_OVERLAP_SECONDS,
    DEFAULT_CHUNK_SECONDS,
)
from unipool_lobes.inference.vad import VAD_CHOICES

__all__ = [
    "add_long_audio_options",
    "chunk_seconds_type",
    "configure_from_args",
]


def chunk_seconds_type(text):
    """``argparse`` type of ``--chunk-seconds``: ``0``/``none`` is None.

    Arguments
    ---------
    text : str
        The option's value.

    Returns
    -------
    float or None
        The window in seconds, or None (whole files).

    Raises
    ------
    argparse.ArgumentTypeError
        For a negative, non-finite or non-numeric value.

    Example
    -------
    >>> chunk_seconds_type("20"), chunk_seconds_type("none")
    (20.0, None)
    """
    if text.strip().lower() in ("none", "off", "0", "0.0"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds (or 'none')"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a finite number of seconds >= 0"
        )
    return value or None


def _seconds_type(text):
    """``argparse`` type: a finite number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a finite number of seconds >= 0"
        )
    return value


def add_long_audio_options(
    parser, vad=True, chunk_default=DEFAULT_CHUNK_SECONDS
):
    """Adds ``--chunk-seconds``, ``--chunk-overlap-seconds`` and ``--vad``.

    Arguments
    ---------
    parser : argparse.ArgumentParser
        A command's parser.
    vad : bool
        Also add ``--vad``.
    chunk_default : float or None
        The default window; None embeds whole files unless asked (``score``:
        a trial list is evaluated on whole utterances, as the recipes'
        test stage and the papers do).

    Example
    -------
    >>> parser = argparse.ArgumentParser()
    >>> add_long_audio_options(parser)
    >>> args = parser.parse_args(["--chunk-seconds", "none", "--vad", "energy"])
    >>> args.chunk_seconds, args.chunk_overlap_seconds, args.vad
    (None, None, 'energy')
    """
    parser.add_argument(
        "--chunk-seconds",
        type=chunk_seconds_type,
        default=chunk_default,
        help="embed a recording longer than this window by overlapping "
        "windows of it, in bounded memory; 0 or 'none': whole files "
        f"(default {chunk_default or 'none'})",
    )
    parser.add_argument(
        "--chunk-overlap-seconds",
        type=_seconds_type,
        default=DEFAULT_CHUNK_OVERLAP_SECONDS,
        help="overlap of consecutive windows, at most half the window "
        "(default: a tenth of the window)",
    )
    if vad:
        parser.add_argument(
            "--vad",
            choices=VAD_CHOICES,
            help="remove silence first: the silero-vad model (offline) or "
            "a frame-energy detector; a file without speech is an error",
        )


def configure_from_args(verifier, args):
    """Applies the parsed long-audio options to a loaded verifier.

    Arguments
    ---------
    verifier : LongAudioMixin
        The loaded model (left alone if it has no ``configure_long_audio``).
    args : argparse.Namespace
        Parsed arguments; missing options keep the defaults.

    Returns
    -------
    LongAudioMixin
        ``verifier``.

    Raises
    ------
    ValueError
        For an option out of range (e.g. an overlap above half the window).

    Example
    -------
    >>> from unipool_lobes.inference.long_audio import LongAudioMixin
    >>> class Verifier(LongAudioMixin):
    ...     sample_rate, min_samples = 16000, 400
    >>> args = argparse.Namespace(chunk_seconds=5.0, vad="energy")
    >>> configured = configure_from_args(Verifier(), args)
    >>> configured.chunk_seconds, configured.chunk_overlap_seconds
    (5.0, 0.5)
    """
    if not hasattr(verifier, "configure_long_audio"):
        return verifier
    try:
        return verifier.configure_long_audio(
            chunk_seconds=getattr(args, "chunk_seconds", DEFAULT_CHUNK_SECONDS),
            chunk_overlap_seconds=getattr(
                args, "chunk_overlap_seconds", DEFAULT_CHUNK_OVERLAP_SECONDS
            ),
            vad=getattr(args, "vad", None),
        )
    except ValueError as error:
        raise ValueError(
            f"--chunk-seconds/--chunk-overlap-seconds: {error}"
        ) from None
