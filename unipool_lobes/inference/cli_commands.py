"""The ``export``, ``verify`` and ``embed`` commands of ``unipool-sv``.

With the model loading they share with ``score`` (``load_verifier``,
``check_device``) and the batched embedding in one-line errors
(``encode_or_explain``).

Authors
 * unipool-sv developers 2026
"""

import json
import math
import os
import pathlib
import shutil

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from unipool_lobes.inference.cli_lists import read_file_list
from unipool_lobes.inference.cli_long_audio import configure_from_args
from unipool_lobes.inference.cli_onnx import apply_runtime
from unipool_lobes.inference.export import ensure_pretrained, export_pretrained
from unipool_lobes.inference.speaker import SpeakerVerifier
from unipool_lobes.utils.safe_io import (
    atomic_open,
    disk_full_as_error,
    lock_target,
    make_temporary_folder,
    write_text_atomic,
)

__all__ = [
    "EMBED_INFO",
    "check_device",
    "encode_or_explain",
    "load_verifier",
    "run_embed",
    "run_export",
    "run_verify",
]


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
        ssl_from_hub=getattr(args, "ssl_from_hub", False),
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
    verifier = SpeakerVerifier.from_hparams(folder, run_opts={"device": device})
    verifier = apply_runtime(verifier, args)  # --runtime onnx
    return configure_from_args(verifier, args)  # --chunk-seconds, --vad


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
