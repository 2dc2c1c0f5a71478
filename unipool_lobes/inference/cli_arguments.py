"""The command line of ``unipool-sv``: its parser and value checks.

``build_parser`` gives the ``export``, ``verify``, ``embed`` and ``score``
commands; ``finite_float``, ``positive_int`` and ``positive_float`` are the
``argparse`` types that refuse a bad value before any work.

Authors
 * unipool-sv developers 2026
"""

import argparse
import math

from unipool_lobes.inference.cli_long_audio import add_long_audio_options
from unipool_lobes.inference.cli_onnx import (
    add_export_onnx_command,
    add_runtime_option,
)
from unipool_lobes.inference.long_audio import DEFAULT_CHUNK_SECONDS

__all__ = [
    "DEFAULT_MAX_BATCH_SECONDS",
    "NORM_CHOICES",
    "build_parser",
    "finite_float",
    "positive_float",
    "positive_int",
]


DEFAULT_MAX_BATCH_SECONDS = 300.0


NORM_CHOICES = ("z-norm", "t-norm", "s-norm")


def build_parser():
    """The argument parser of ``unipool-sv``.

    Returns
    -------
    argparse.ArgumentParser
        With the ``export``, ``verify``, ``embed`` and ``score`` commands.

    Example
    -------
    >>> args = build_parser().parse_args(
    ...     ["verify", "a.wav", "b.wav", "--model", "m"]
    ... )
    >>> args.command, args.model, args.threshold
    ('verify', 'm', None)
    """
    from unipool_lobes.inference import cli_gallery as gallery_cli

    parser = argparse.ArgumentParser(
        prog="unipool-sv",
        description="Speaker verification with exported unipool-sv models.",
    )
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="show the full traceback of an input error",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    export = commands.add_parser(
        "export", help="export a training run as a pretrained folder"
    )
    export.add_argument("run_folder")
    export.add_argument("out_folder")
    export.add_argument("--overwrite", action="store_true")
    export.add_argument(
        "--no-classifier",
        action="store_true",
        help="leave out the speaker classifier and label encoder",
    )
    export.add_argument(
        "--ssl-from-hub",
        action="store_true",
        help="keep a frozen SSL model's hub id (downloaded at load) instead "
        "of embedding its config and weights (refused for a local or "
        "fine-tuned SSL model)",
    )

    verify = commands.add_parser(
        "verify", help="verify two audio files, or one against --speaker"
    )
    verify.add_argument("audio1")
    verify.add_argument("audio2", nargs="?", help="(not with --gallery)")
    gallery_cli.add_verify_gallery_options(verify)
    verify.add_argument(
        "--threshold",
        type=finite_float,
        help="decision threshold (default: the model's calibrated one)",
    )
    _model_options(verify)

    embed = commands.add_parser("embed", help="embed a list of audio files")
    embed.add_argument(
        "--list",
        required=True,
        dest="file_list",
        help="text file: 'path' or 'id<TAB>path' per line",
    )
    embed.add_argument(
        "--out",
        required=True,
        help="X.npy ([N, E], ids in X_ids.txt) or a folder (one .npy each, "
        "written whole or not at all)",
    )
    _model_options(embed)

    score = commands.add_parser(
        "score", help="score a trial list (also across corpora)"
    )
    score.add_argument(
        "--trials",
        required=True,
        help="trial list: enrol,test,label CSV, VoxCeleb text or the "
        "UniPool authors' LABEL,SAMPLE1,SAMPLE2 CSV",
    )
    source = score.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", help="manifest CSV of the utterances")
    source.add_argument(
        "--audio-root", help="folder the trial list's paths are relative to"
    )
    score.add_argument("--data-root", help="value of $data_root in CSVs")
    score.add_argument(
        "--out",
        help="output folder (default <model>/eval/<trials name>-<hash of the "
        "trials and utterance sources>)",
    )
    score.add_argument(
        "--norm", choices=NORM_CHOICES, help="cohort score normalisation"
    )
    score.add_argument("--cohort", help="manifest CSV of the cohort")
    score.add_argument(
        "--top-k",
        type=positive_int,
        default=300,
        help="highest cohort scores kept per utterance (default 300)",
    )
    score.add_argument(
        "--no-plots", action="store_true", help="skip the PNG plots"
    )
    gallery_cli.add_score_gallery_option(score)
    _model_options(score, chunk_default=None)
    gallery_cli.add_gallery_commands(
        commands, _model_options, positive_int, finite_float
    )
    add_export_onnx_command(commands)
    return parser


def finite_float(text):
    """``argparse`` type: a finite float (``nan`` and ``inf`` are refused).

    Arguments
    ---------
    text : str
        The option's value.

    Returns
    -------
    float
        The value.

    Raises
    ------
    argparse.ArgumentTypeError
        For a non-number or a non-finite number.

    Example
    -------
    >>> finite_float("0.25")
    0.25
    >>> finite_float("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: 'nan' is not a finite number
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text):
    """``argparse`` type: an integer of at least 1.

    Arguments
    ---------
    text : str
        The option's value.

    Returns
    -------
    int
        The value.

    Raises
    ------
    argparse.ArgumentTypeError
        For anything else.

    Example
    -------
    >>> positive_int("16")
    16
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an integer"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not at least 1")
    return value


def positive_float(text):
    """``argparse`` type: a finite float above zero.

    Arguments
    ---------
    text : str
        The option's value.

    Returns
    -------
    float
        The value.

    Raises
    ------
    argparse.ArgumentTypeError
        For anything else.

    Example
    -------
    >>> positive_float("300")
    300.0
    """
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not above 0")
    return value


def _model_options(parser, chunk_default=DEFAULT_CHUNK_SECONDS):
    """Adds the options shared by the commands that load a model."""
    parser.add_argument(
        "--model", required=True, help="pretrained folder or training run"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1... (default: auto)")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=16,
        help="most files per batch",
    )
    parser.add_argument(
        "--max-batch-seconds",
        type=positive_float,
        default=DEFAULT_MAX_BATCH_SECONDS,
        help="most seconds of padded audio per batch; a longer file goes "
        f"alone (default {DEFAULT_MAX_BATCH_SECONDS:g})",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars"
    )
    add_long_audio_options(parser, chunk_default=chunk_default)
    add_runtime_option(parser)  # --runtime torch|onnx
