"""The ``unipool-sv`` command: export, verify, embed and score.

::

    unipool-sv export RUN_FOLDER OUT_FOLDER
    unipool-sv verify A.wav B.wav --model DIR
    unipool-sv embed --model DIR --list files.txt --out emb.npy   (or a folder)
    unipool-sv score --model DIR --trials trials.csv --manifest test.csv
                     [--out FOLDER] [--norm s-norm --cohort train.csv]

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

import argparse
import hashlib
import json
import math
import os
import pathlib
import shutil
import sys

import numpy as np
import torch
from ruamel.yaml import YAMLError
from transformers.utils import logging as hf_logging

from unipool_lobes.dataio.manifest import read_csv, read_manifest
from unipool_lobes.inference.export import ensure_pretrained, export_pretrained
from unipool_lobes.inference.speaker import (
    CheckpointMismatchError,
    SpeakerVerifier,
)
from unipool_lobes.scoring.metrics import (
    cosine_score_trials,
    metrics_line,
    verification_results,
    write_scores,
)
from unipool_lobes.scoring.trials import (
    basename_id,
    read_trials,
    voxceleb_id_to_path,
    voxceleb_path_to_id,
)
from unipool_lobes.training.checkpoints import CheckpointCorruptError
from unipool_lobes.utils.safe_io import (
    FolderBusyError,
    atomic_open,
    disk_full_as_error,
    lock_folder,
    lock_target,
    make_temporary_folder,
    write_text_atomic,
)

EXIT_BAD_INPUT = 2
DEFAULT_MAX_BATCH_SECONDS = 300.0
NORM_CHOICES = ("z-norm", "t-norm", "s-norm")


class TrialError(ValueError):
    """A trial list that does not fit the utterances available."""


def read_file_list(path):
    """Reads a list of audio files: ``path`` or ``id<TAB>path`` per line.

    A line is a path (spaces allowed), or an id and a path separated by a
    tab. Blank lines and lines starting with ``#`` are skipped; a UTF-8
    byte-order mark is accepted. Without an id, the file name without
    extension is the id. Relative paths are relative to the list's folder.

    Arguments
    ---------
    path : str or os.PathLike
        The list file.

    Returns
    -------
    ids : list of str
        One id per file.
    paths : list of str
        The audio files.

    Raises
    ------
    FileNotFoundError
        If the list is missing.
    ValueError
        On a line with more than one tab, an ``id path`` line separated by
        a space instead of a tab, or a repeated id (the message names the
        file and line).

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "list.txt").write_text(
    ...     "a/x y.wav\\nspk1-y\\t/d/y.flac\\n")
    >>> ids, paths = read_file_list(folder / "list.txt")
    >>> ids, paths[0].endswith("a/x y.wav"), paths[1]
    (['x y', 'spk1-y'], True, '/d/y.flac')
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file list not found: {path}")
    ids, paths, line_of = [], [], {}
    text = path.read_text(encoding="utf-8-sig")
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        fields = [field.strip() for field in entry.split("\t")]
        if len(fields) > 2:
            raise ValueError(
                f"{path}:{number}: expected 'path' or 'id<TAB>path', got "
                f"{len(fields)} tab-separated fields"
            )
        audio = str(path.parent / fields[-1])
        if len(fields) == 1 and not os.path.exists(audio):
            words = entry.split(maxsplit=1)
            if len(words) == 2 and os.path.exists(path.parent / words[1]):
                raise ValueError(
                    f"{path}:{number}: {entry!r} is not a file; to give an "
                    "id, separate it from the path with a tab (paths may "
                    "hold spaces)"
                )
        utterance_id = fields[0] if len(fields) == 2 else _stem(fields[-1])
        if utterance_id in line_of:
            raise ValueError(
                f"{path}:{number}: id {utterance_id!r} already on line "
                f"{line_of[utterance_id]}; give unique ids ('id<TAB>path' "
                "lines)"
            )
        line_of[utterance_id] = number
        ids.append(utterance_id)
        paths.append(audio)
    if not ids:
        raise ValueError(f"{path} lists no audio file")
    return ids, paths


def manifest_utterances(manifest, data_root=None):
    """Reads the utterances of a SpeechBrain manifest CSV.

    Arguments
    ---------
    manifest : str or os.PathLike
        CSV with ``ID`` and ``wav`` columns, optionally ``start``/``stop``
        in samples; ``$data_root`` in ``wav`` is replaced by ``data_root``.
    data_root : str, optional
        The value of ``$data_root``.

    Returns
    -------
    dict
        ``id -> (path, (start, stop) or None)``, in manifest order.

    Raises
    ------
    FileNotFoundError
        If the manifest is missing.
    ValueError
        On missing columns, a repeated ID or an unset ``$data_root``.

    Example
    -------
    >>> path = getfixture("tmp_path") / "test.csv"
    >>> _ = path.write_text("ID,wav,start,stop\\nu1,$data_root/u1.wav,0,800\\n")
    >>> manifest_utterances(path, data_root="/corpus")
    {'u1': ('/corpus/u1.wav', (0, 800))}
    """
    manifest = pathlib.Path(manifest)
    replacements = {} if data_root is None else {"data_root": data_root}
    rows = read_manifest(manifest, replacements)
    table = {}
    for number, (utterance, row) in enumerate(rows.items(), start=2):
        where = f"{manifest}:{number}"
        if "wav" not in row:
            raise ValueError(f"{manifest}: needs 'ID' and 'wav' columns")
        wav = row["wav"]
        if data_root is None and "$data_root" in wav:
            raise ValueError(f"{where}: '$data_root' needs --data-root")
        segment = None
        if row.get("start") not in (None, "") and row.get("stop"):
            segment = (int(float(row["start"])), int(float(row["stop"])))
        table[utterance] = (wav, segment)
    return table


def audio_root_utterances(trials_path, audio_root):
    """Maps the utterance ids of a trial list to files under a root folder.

    VoxCeleb text lists (``label a.wav b.wav``) and the UniPool authors'
    lists (``LABEL,SAMPLE1,SAMPLE2``) name paths: they are taken relative
    to ``audio_root``. Our CSV lists name ids: ``a--b--c`` is looked up as
    ``audio_root/a/b/c.wav``.

    Arguments
    ---------
    trials_path : str or os.PathLike
        The trial list.
    audio_root : str or os.PathLike
        The folder the trial paths are relative to.

    Returns
    -------
    dict
        ``id -> (path, None)`` with the ids ``read_trials`` gives.

    Example
    -------
    >>> path = getfixture("tmp_path") / "veri.txt"
    >>> _ = path.write_text("1 id1/v/00001.wav id1/w/00003.wav\\n")
    >>> audio_root_utterances(path, "/vox1")["id1--w--00003"]
    ('/vox1/id1/w/00003.wav', None)
    """
    root = pathlib.Path(audio_root)
    with open(trials_path, encoding="utf-8-sig") as source:
        lines = source.read().splitlines()
    first = lines[0].strip() if lines else ""
    header = set(first.split(","))
    table = {}
    if "," not in first:
        for line in lines:
            for relative in line.split()[1:3]:
                table[voxceleb_path_to_id(relative)] = (
                    str(root / relative),
                    None,
                )
    elif {"LABEL", "SAMPLE1", "SAMPLE2"} <= header:
        for row in read_csv(trials_path):
            for relative in (row["SAMPLE1"], row["SAMPLE2"]):
                table[basename_id(relative)] = (str(root / relative), None)
    else:
        trials = read_trials(trials_path)
        for utterance_id in trials["enrol"] + trials["test"]:
            relative = voxceleb_id_to_path(utterance_id)
            table[utterance_id] = (str(root / relative), None)
    return table


def check_trial_utterances(trials, utterances, trials_path, where):
    """Raises TrialError for the first trial naming an unknown utterance.

    Arguments
    ---------
    trials : dict
        ``enrol``, ``test`` and ``label`` lists (``read_trials``).
    utterances : dict
        The known utterance ids.
    trials_path : str
        The trial list, for the message.
    where : str
        Where the utterances come from, for the message.

    Raises
    ------
    TrialError
        Naming the trial list, the trial number and the utterance.

    Example
    -------
    >>> trials = {"enrol": ["a", "a"], "test": ["b", "z"], "label": [1, 0]}
    >>> try:
    ...     check_trial_utterances(trials, {"a": 0, "b": 0}, "t.csv", "m.csv")
    ... except TrialError as error:
    ...     print(error)
    t.csv: trial 2 (a z) names utterance 'z', which is not in m.csv
    """
    for number, pair in enumerate(
        zip(trials["enrol"], trials["test"], strict=True), start=1
    ):
        for utterance_id in pair:
            if utterance_id not in utterances:
                raise TrialError(
                    f"{trials_path}: trial {number} ({pair[0]} {pair[1]}) "
                    f"names utterance {utterance_id!r}, which is not in "
                    f"{where}"
                )


def build_parser():
    """The argument parser of ``unipool-sv``.

    Returns
    -------
    argparse.ArgumentParser
        With the ``export``, ``verify``, ``embed`` and ``score`` commands.

    Example
    -------
    >>> args = build_parser().parse_args(["verify", "a.wav", "b.wav",
    ...                                   "--model", "m"])
    >>> args.command, args.model, args.threshold
    ('verify', 'm', None)
    """
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

    verify = commands.add_parser("verify", help="verify two audio files")
    verify.add_argument("audio1")
    verify.add_argument("audio2")
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
    _model_options(score)
    return parser


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
        "verify": run_verify,
        "embed": run_embed,
        "score": run_score,
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


def run_export(args):
    """``unipool-sv export``: writes the pretrained folder.

    Arguments
    ---------
    args : argparse.Namespace
        Parsed arguments.
    """
    out = export_pretrained(
        args.run_folder,
        args.out_folder,
        include_classifier=not args.no_classifier,
        overwrite=args.overwrite,
    )
    print(out)


def run_verify(args):
    """``unipool-sv verify``: prints the score and the decision.

    Arguments
    ---------
    args : argparse.Namespace
        Parsed arguments.
    """
    verifier = load_verifier(args)
    score, decision = verifier.verify_files(
        args.audio1, args.audio2, threshold=args.threshold
    )
    if not math.isfinite(float(score)):
        raise ValueError(
            f"the score of {args.audio1} and {args.audio2} is not finite "
            f"({float(score)}): the model gives non-finite embeddings"
        )
    threshold = verifier._decision_threshold(args.threshold)
    verdict = "same speaker" if bool(decision) else "different speakers"
    print(f"score: {float(score):.6f}")
    print(f"decision: {verdict} (threshold {threshold:.6f})")


def run_embed(args):
    """``unipool-sv embed``: writes ids and embeddings.

    The output is checked to be writable and locked before any embedding
    is computed. A folder output is written to a temporary sibling and
    renamed into place, so a killed run leaves no partial folder; an
    existing folder is replaced only if an earlier ``embed`` wrote it.

    Arguments
    ---------
    args : argparse.Namespace
        Parsed arguments.
    """
    ids, paths = read_file_list(args.file_list)
    out = pathlib.Path(args.out).absolute()
    with lock_target(out, "embed"):
        if out.suffix != ".npy":
            _check_replaceable_embeddings(out)
        verifier = load_verifier(args)
        embeddings = encode_or_explain(verifier, paths, args).numpy()
        if out.suffix == ".npy":
            ids_file = out.with_name(out.stem + "_ids.txt")
            write_text_atomic(ids_file, "".join(f"{i}\n" for i in ids))
            with atomic_open(out, "wb") as target:
                np.save(target, embeddings)
            print(f"{len(ids)} embeddings of size {embeddings.shape[1]}: {out}")
            return
        _write_embedding_folder(out, ids, embeddings, args)
    print(f"{len(ids)} embeddings of size {embeddings.shape[1]} in {out}/")


EMBED_INFO = "embed.json"


def _check_replaceable_embeddings(out):
    """An existing ``--out`` folder must be an earlier embed output."""
    if out.exists() and not (out / EMBED_INFO).is_file():
        raise FileExistsError(
            f"{out} exists and was not written by 'unipool-sv embed' (no "
            f"{EMBED_INFO}): refusing to replace it; choose another --out"
        )


def _write_embedding_folder(out, ids, embeddings, args):
    """Writes one .npy per id into a staging folder renamed to ``out``."""
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # a killed embed's
    staging = make_temporary_folder(out.parent, f".{out.name}.tmp-")
    try:
        for utterance_id, embedding in zip(ids, embeddings, strict=True):
            name = utterance_id.replace("/", "--") + ".npy"
            with disk_full_as_error(staging / name, "embedding"):
                np.save(staging / name, embedding)
        info = {
            "model": str(pathlib.Path(args.model).resolve()),
            "list": str(pathlib.Path(args.file_list).resolve()),
            "count": len(ids),
            "size": int(embeddings.shape[1]),
        }
        with disk_full_as_error(staging / EMBED_INFO, "embedding record"):
            (staging / EMBED_INFO).write_text(json.dumps(info, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def encode_or_explain(verifier, paths, args, segments=None, **options):
    """``encode_files`` with the CLI's batching, in one-line errors.

    Arguments
    ---------
    verifier : SpeakerVerifier
        The loaded model.
    paths : list of str
        The audio files.
    args : argparse.Namespace
        With ``batch_size``, ``max_batch_seconds`` and ``no_progress``.
    segments : list, optional
        ``(start, stop)`` per file.
    **options : dict
        Passed to ``encode_files`` (``return_layer_weights``).

    Returns
    -------
    torch.Tensor or tuple
        What ``encode_files`` returns.

    Raises
    ------
    MemoryError
        With the remedy, when a batch does not fit in memory.
    """
    try:
        return verifier.encode_files(
            paths,
            batch_size=args.batch_size,
            max_batch_seconds=args.max_batch_seconds,
            progress=not args.no_progress,
            segments=segments,
            **options,
        )
    except MemoryError as error:
        raise MemoryError(
            f"{error}; use a smaller --max-batch-seconds or --batch-size, "
            "shorter files, or a device with more memory"
        ) from error


def run_score(args):
    """``unipool-sv score``: scores, metrics and plots of a trial list.

    Arguments
    ---------
    args : argparse.Namespace
        Parsed arguments.
    """
    if args.norm and not args.cohort:
        raise ValueError(f"--norm {args.norm} needs --cohort")
    if args.cohort and not args.norm:
        raise ValueError("--cohort needs --norm (z-norm, t-norm or s-norm)")
    trials_path = pathlib.Path(args.trials)
    if not trials_path.is_file():
        raise FileNotFoundError(f"trial list not found: {trials_path}")
    trials = read_trials(trials_path)
    if args.manifest:
        utterances = manifest_utterances(args.manifest, args.data_root)
        where = args.manifest
    else:
        utterances = audio_root_utterances(trials_path, args.audio_root)
        where = f"--audio-root {args.audio_root}"
    check_trial_utterances(trials, utterances, str(trials_path), where)
    needed = set(trials["enrol"]) | set(trials["test"])
    ids = [
        utterance_id for utterance_id in utterances if utterance_id in needed
    ]

    out = pathlib.Path(args.out) if args.out else _default_out(args)
    with lock_folder(out, "score"):
        _score(args, trials, trials_path, utterances, where, ids, out)


def _score(args, trials, trials_path, utterances, where, ids, out):
    """Embeds, scores and writes the results (``out`` is locked)."""
    verifier = load_verifier(args)
    backend = verifier.mods.embedding_model
    with_layers = not args.no_plots and hasattr(backend, "keeping_attention")
    encoded = encode_or_explain(
        verifier,
        [utterances[i][0] for i in ids],
        args,
        segments=[utterances[i][1] for i in ids],
        return_layer_weights=with_layers,
    )
    embeddings, layer_weights = encoded if with_layers else (encoded, None)
    scores = cosine_score_trials(
        embeddings, ids, trials["enrol"], trials["test"]
    )
    if args.norm:
        scores = _normalised_scores(
            args, verifier, embeddings, ids, trials, scores
        )

    if not bool(torch.isfinite(scores).all()):
        bad = int((~torch.isfinite(scores)).nonzero()[0])
        raise ValueError(
            f"{trials_path}: the score of trial {bad + 1} "
            f"({trials['enrol'][bad]} {trials['test'][bad]}) is not finite"
        )
    results = verification_results(trials["label"], scores)
    results.update(
        model=str(pathlib.Path(args.model).resolve()),
        model_name=getattr(verifier.hparams, "model_name", None),
        trained_on=getattr(verifier.hparams, "corpus_name", None),
        trials=str(trials_path.resolve()),
        utterances=str(pathlib.Path(where).resolve())
        if args.manifest
        else str(pathlib.Path(args.audio_root).resolve()),
        n_utterances=len(ids),
        norm=args.norm,
        top_k=args.top_k if args.norm else None,
        cohort=str(pathlib.Path(args.cohort).resolve())
        if args.cohort
        else None,
    )
    if not args.norm and verifier.threshold is not None:
        results["calibrated_threshold"] = _rates_at(
            trials["label"], scores, verifier.threshold
        )
    calibrated_text = None
    if verifier.score_backend is not None:
        calibrated_text, results["calibrated"] = _calibrated_scores(
            verifier, embeddings, ids, utterances, trials, trials_path
        )
    out.mkdir(parents=True, exist_ok=True)
    if calibrated_text is not None:
        write_text_atomic(out / CALIBRATED_SCORES, calibrated_text)
    else:  # not left over from a model that had a back-end
        (out / CALIBRATED_SCORES).unlink(missing_ok=True)
    write_scores(
        out / "scores.txt",
        trials["enrol"],
        trials["test"],
        trials["label"],
        scores.tolist(),
    )
    write_text_atomic(
        out / "results.json", json.dumps(results, indent=2) + "\n"
    )
    if not args.no_plots:
        _write_plots(out, trials, scores, layer_weights, backend, trials_path)
    print(
        f"{metrics_line(results)}  ({results['n_trials']} trials, "
        f"{len(ids)} utterances) -> {out}"
    )
    if calibrated_text is not None:
        print(
            f"calibrated (QMF): {metrics_line(results['calibrated'])} -> "
            f"{out / CALIBRATED_SCORES}"
        )


CALIBRATED_SCORES = "calibrated_scores.txt"


def _calibrated_scores(verifier, embeddings, ids, utterances, trials, where):
    """The calibrated-score file's text and the LLRs' metrics."""
    durations = verifier.file_durations(
        [utterances[i][0] for i in ids], [utterances[i][1] for i in ids]
    )
    scored = verifier.score_backend.score(
        embeddings, ids, durations, trials["enrol"], trials["test"]
    )
    llr, probability = scored["llr"], scored["probability"]
    if not bool(torch.isfinite(llr).all()):
        bad = int((~torch.isfinite(llr)).nonzero()[0])
        raise ValueError(
            f"{where}: the calibrated LLR of trial {bad + 1} "
            f"({trials['enrol'][bad]} {trials['test'][bad]}) is not finite"
        )
    lines = [
        f"{enrol} {test} {label} {value!r} {chance!r}\n"
        for enrol, test, label, value, chance in zip(
            trials["enrol"],
            trials["test"],
            trials["label"],
            llr.tolist(),
            probability.tolist(),
            strict=True,
        )
    ]
    results = verification_results(trials["label"], llr, llr=True)
    calibration = verifier.score_backend.calibration
    results.update(
        scores="QMF-calibrated log-likelihood ratios (nats)",
        top_k=verifier.score_backend.top_k,
        cohort_size=int(verifier.score_backend.cohort.shape[0]),
        n_calibration_trials=calibration.info.get("n_trials"),
    )
    return "".join(lines), results


def load_verifier(args):
    """Loads the model of ``--model`` (a run folder is exported first).

    Arguments
    ---------
    args : argparse.Namespace
        With ``model`` and ``device``.

    Returns
    -------
    SpeakerVerifier
        The loaded interface.
    """
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    check_device(device)
    folder = ensure_pretrained(args.model)
    if getattr(args, "no_progress", False):
        hf_logging.disable_progress_bar()
    return SpeakerVerifier.from_hparams(folder, run_opts={"device": device})


def check_device(device):
    """Refuses a device this machine does not have, before any work.

    Arguments
    ---------
    device : str
        E.g. ``cpu``, ``cuda``, ``cuda:1``.

    Raises
    ------
    ValueError
        Naming the device and what is available.

    Example
    -------
    >>> check_device("cpu")
    >>> try:
    ...     check_device("tpu")
    ... except ValueError as error:
    ...     print(str(error)[:26])
    --device tpu: not a device
    """
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device}: not a device") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {device}: this machine has no GPU")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(
                f"--device {device}: this machine has {count} GPU(s)"
            )


# ------------------------------------------------------------------ helpers
def _model_options(parser):
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


def _default_out(args):
    """The default ``score`` folder of the parsed arguments."""
    return default_score_folder(
        args.model,
        args.trials,
        args.manifest or args.audio_root,
        norm=args.norm,
        cohort=args.cohort,
    )


def default_score_folder(model, trials, utterances, norm=None, cohort=None):
    """Where ``score`` writes by default.

    ``<model>/eval/<trials name>[_<norm>]-<hash>``: the hash of the trial
    list's, the utterances' and the cohort's absolute paths keeps apart the
    results of two corpora whose trial lists share a name.

    Arguments
    ---------
    model : str or os.PathLike
        The ``--model`` folder.
    trials : str or os.PathLike
        The trial list.
    utterances : str or os.PathLike
        The manifest or audio root.
    norm : str, optional
        The score normalisation.
    cohort : str or os.PathLike, optional
        The cohort manifest.

    Returns
    -------
    pathlib.Path
        The folder.

    Example
    -------
    >>> a = default_score_folder("m", "/vctk/test_trials.csv", "/vctk/t.csv")
    >>> b = default_score_folder("m", "/libri/test_trials.csv", "/libri/t.csv")
    >>> a.parent == b.parent and a.name.startswith("test_trials-") and a != b
    True
    """
    name = pathlib.Path(trials).stem
    if norm:
        name += f"_{norm}"
    key = "\n".join(
        str(pathlib.Path(path).resolve()) if path else ""
        for path in (trials, utterances, cohort)
    )
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]
    return pathlib.Path(model) / "eval" / f"{name}-{digest}"


def _normalised_scores(args, verifier, embeddings, ids, trials, scores):
    """Cohort-normalised scores (``unipool_lobes.scoring.score_norm``)."""
    from unipool_lobes.scoring.score_norm import ScoreNormalizer

    cohort = manifest_utterances(args.cohort, args.data_root)
    cohort_embeddings = encode_or_explain(
        verifier,
        [path for path, _ in cohort.values()],
        args,
        segments=[segment for _, segment in cohort.values()],
    )
    normalizer = ScoreNormalizer(cohort_embeddings, args.top_k, args.norm)
    return normalizer(
        embeddings, ids, trials["enrol"], trials["test"], raw_scores=scores
    )


def _rates_at(labels, scores, threshold):
    """False-acceptance and false-rejection rates at a threshold."""
    labels = torch.as_tensor(labels).bool()
    accepted = torch.as_tensor(scores) > threshold
    return {
        "value": float(threshold),
        "FAR": float(accepted[~labels].float().mean()),
        "FRR": float((~accepted[labels]).float().mean()),
    }


def _write_plots(out, trials, scores, layer_weights, backend, trials_path):
    """The DET plot and, for UniPool, the layer-significance plot."""
    from unipool_lobes.scoring.plots import plot_det, plot_layer_significance

    plot_det(
        trials["label"],
        scores,
        out / "det.png",
        title=f"DET: {trials_path.name}",
    )
    if layer_weights is not None:
        layers = getattr(backend, "layers", None)
        names = [str(layer) for layer in layers] if layers else None
        plot_layer_significance(
            layer_weights,
            out / "layer_significance.png",
            layer_names=names,
            title=f"Layer significance: {trials_path.name}",
        )


def _stem(path):
    """File name without its extension."""
    return pathlib.PurePath(path).stem
