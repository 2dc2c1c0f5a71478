"""The ``unipool-sv`` command: export, verify, embed and score.

::

    unipool-sv export RUN_FOLDER OUT_FOLDER [--ssl-from-hub]
    unipool-sv verify A.wav B.wav --model DIR
    unipool-sv export-onnx --model DIR   (then --runtime onnx on the others)
    unipool-sv embed --model DIR --list files.txt --out emb.npy   (or a folder)
    unipool-sv score --model DIR --trials trials.csv --manifest test.csv
                     [--out FOLDER] [--norm s-norm --cohort train.csv]
                     [--gallery G.safetensors]
    unipool-sv enroll --model DIR --gallery G.safetensors --speaker NAME a.wav
    unipool-sv identify --model DIR --gallery G.safetensors x.wav [--top-k 5]
    unipool-sv verify x.wav --model DIR --gallery G.safetensors --speaker NAME

The gallery commands are ``unipool_lobes.inference.cli_gallery``'s.
``--model`` is a pretrained folder or a training run folder (exported on
the fly into ``<run>/pretrained``). ``score`` is also the cross-dataset
evaluation: a model trained on one corpus scored on another corpus's
trials and manifest; by default it writes ``scores.txt``,
``results.json``, ``det.png`` and, for UniPool, ``layer_significance.png``
into ``<model>/eval/<trials name>/``. A model folder with a score back-end
(``score_backend.pt`` and ``calibration.json``,
``unipool_lobes.scoring.calibration``) also gets ``calibrated_scores.txt``
(``enrol test label llr probability``
per line: the QMF-calibrated log-likelihood ratio in nats and the target
probability) and a ``calibrated`` entry in ``results.json`` (EER, minDCF,
Cllr and min Cllr of the LLRs). Bad input (a missing or unreadable
audio file, a too-short signal, a trial naming an unknown utterance) ends
with a one-line message naming it and exit code 2.

Authors
 * unipool-sv developers 2026
"""

import sys

from ruamel.yaml import YAMLError

from unipool_lobes.inference.cli_arguments import (
    DEFAULT_MAX_BATCH_SECONDS,
    NORM_CHOICES,
    build_parser,
    finite_float,
    positive_float,
    positive_int,
)
from unipool_lobes.inference.cli_commands import (
    EMBED_INFO,
    check_device,
    encode_or_explain,
    load_verifier,
    run_embed,
    run_export,
    run_verify,
)
from unipool_lobes.inference.cli_gallery import (
    run_enroll,
    run_identify,
    run_verify_command,
)
from unipool_lobes.inference.cli_lists import (
    TrialError,
    audio_root_utterances,
    check_trial_utterances,
    manifest_utterances,
    read_file_list,
)
from unipool_lobes.inference.cli_onnx import run_export_onnx
from unipool_lobes.inference.cli_score import (
    CALIBRATED_SCORES,
    default_score_folder,
    run_score,
)
from unipool_lobes.inference.speaker import CheckpointMismatchError
from unipool_lobes.training.checkpoint_files import CheckpointCorruptError
from unipool_lobes.utils.safe_io import FolderBusyError

# The parser (``.cli_arguments``), the commands (``.cli_commands``,
# ``.cli_score``) and the list reading (``.cli_lists``) live in their own
# modules; their public names are given here too, as before.
__all__ = [
    "CALIBRATED_SCORES",
    "DEFAULT_MAX_BATCH_SECONDS",
    "EMBED_INFO",
    "EXIT_BAD_INPUT",
    "INPUT_ERRORS",
    "NORM_CHOICES",
    "TrialError",
    "audio_root_utterances",
    "build_parser",
    "check_device",
    "check_trial_utterances",
    "default_score_folder",
    "encode_or_explain",
    "finite_float",
    "load_verifier",
    "main",
    "manifest_utterances",
    "positive_float",
    "positive_int",
    "read_file_list",
    "run_embed",
    "run_export",
    "run_score",
    "run_verify",
]

EXIT_BAD_INPUT = 2


def main(argv=None):
    """Runs ``unipool-sv``.

    Arguments
    ---------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for bad input (message on stderr).

    Example
    -------
    >>> main(["verify", "a.wav", "b.wav", "--model", "no/such/model"])
    2
    """
    args = build_parser().parse_args(argv)
    commands = {
        "export": run_export,
        "verify": run_verify_command,
        "embed": run_embed,
        "score": run_score,
        "enroll": run_enroll,
        "identify": run_identify,
        "export-onnx": run_export_onnx,
    }
    try:
        commands[args.command](args)
    except INPUT_ERRORS as error:
        if args.traceback:
            raise
        message = error.args[0] if isinstance(error, KeyError) else error
        line = " ".join(str(message).split())  # one line, e.g. yaml errors
        print(f"unipool-sv: error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


# Errors of the input or the environment, reported in one line (exit 2).
INPUT_ERRORS = (
    OSError,
    ValueError,
    KeyError,
    MemoryError,
    CheckpointMismatchError,
    CheckpointCorruptError,
    FolderBusyError,
    YAMLError,
    # A model folder whose yaml names a class that cannot be imported.
    ImportError,
)
