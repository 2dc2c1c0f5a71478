"""ONNX export of a pretrained folder: one graph, waveforms to embeddings.

``export_onnx(folder)`` traces the folder's front-end and backend
(:class:`unipool_lobes.inference.onnx_graph.EmbeddingGraph`), inputs
``wavs`` float32 ``[B, S]`` and ``wav_lens`` float32 ``[B]`` (relative
lengths), output ``embeddings`` ``[B, E]`` (not normalised), batch and
length axes dynamic. ``exporter="auto"`` (the default) tries
``torch.onnx.export``'s TorchScript exporter (``dynamo=False``: deprecated
in torch 2.14 but present), then the dynamo exporter (torch.export and
its ONNX translation); ``onnx.json`` records which made the graph. Both
give graphs that pass the check below and run equally fast in
onnxruntime (wav2vec2 base + UniPool, one thread: 1.03 and 1.04 s for a
3 s utterance), but the TorchScript exporter takes seconds where the
dynamo exporter takes minutes (3 s against 45 s for a tiny WavLM, 18 s
against about 9 minutes for a base model): its symbolic shapes.

Before anything is written, onnxruntime runs the graph on padded batches
of other sizes and lengths than the trace's and compares it with the eager
PyTorch model (``SpeakerVerifier._embed``): the largest absolute
difference of the L2-normalised embeddings must be at most ``tolerance``
(1e-4), and each utterance of a padded batch must get (to the same
tolerance) the embedding it gets alone. Then ``model.onnx`` and its record
``onnx.json`` (opset, exporter, versions, the SHA-256 of the checkpoint
files and of the weights the graph came from, of the graph itself, and the
check's errors) are written atomically; a failed check writes nothing.

Authors
 * unipool-sv developers 2026
"""

import os
import pathlib
import shutil
import warnings

import torch
import torch.nn.functional as F

from unipool_lobes.inference.loading import weights_digest
from unipool_lobes.inference.onnx_graph import EmbeddingGraph, OnnxExportError
from unipool_lobes.training.checkpoint_files import file_checksum
from unipool_lobes.utils.safe_io import (
    make_temporary_folder,
    sync_folder,
    write_json_atomic,
)

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "ONNX_FILE",
    "ONNX_INFO",
    "SOURCE_CHECKPOINTS",
    "OnnxExportError",
    "check_onnx_embeddings",
    "export_onnx",
    "weights_digest",
]

ONNX_FILE = "model.onnx"
ONNX_INFO = "onnx.json"
DEFAULT_OPSET = 18
# The ``exporter`` choices: which torch.onnx.export paths are tried, in order.
EXPORTERS = {
    "auto": ("torchscript", "dynamo"),
    "torchscript": ("torchscript",),
    "dynamo": ("dynamo",),
}
# The checkpoint files of a pretrained folder the graph is made of.
SOURCE_CHECKPOINTS = ("front_end.ckpt", "embedding_model.ckpt")
# Seconds of the check's utterances: padded batches of other sizes and
# lengths than the trace's (1.0 and 0.6 s), and each utterance alone.
_TRACE_SECONDS = (1.0, 0.6)
_CHECK_BATCHES = ((1.3, 0.45, 0.9, 0.2), (0.7,), (0.25, 0.5))


def export_onnx(
    folder,
    opset=DEFAULT_OPSET,
    overwrite=False,
    tolerance=1e-4,
    verifier=None,
    exporter="auto",
):
    """Exports a pretrained folder's model as ``model.onnx``, checked.

    Arguments
    ---------
    folder : str or os.PathLike
        A pretrained folder (``unipool-sv export``).
    opset : int
        The ONNX opset (18 or more for the dynamo exporter).
    overwrite : bool
        Replace an existing ``model.onnx``.
    tolerance : float
        Largest absolute difference of the normalised embeddings allowed.
    verifier : SpeakerVerifier, optional
        The folder already loaded (on the CPU); default: loaded here.
    exporter : str
        ``"torchscript"``, ``"dynamo"`` or ``"auto"`` (the first, then the
        second if it fails).

    Returns
    -------
    dict
        The record written to ``onnx.json``.

    Raises
    ------
    FileExistsError
        If ``model.onnx`` exists and not ``overwrite``.
    OnnxExportError
        If the model cannot be exported or the check fails (nothing is
        written then).

    Example
    -------
    >>> from unipool_lobes.inference.speaker import SpeakerVerifier
    >>> try:
    ...     export_onnx(getfixture("tmp_path"))
    ... except FileNotFoundError as error:
    ...     print(str(error).split(":")[0])
    no hyperparams.yaml in ...
    """
    from unipool_lobes.inference.speaker import SpeakerVerifier

    if exporter not in EXPORTERS:
        raise ValueError(
            f"exporter must be one of {sorted(EXPORTERS)}, got {exporter!r}"
        )
    folder = pathlib.Path(folder)
    target = folder / ONNX_FILE
    if verifier is None:
        verifier = SpeakerVerifier.from_hparams(
            folder, run_opts={"device": "cpu"}
        )
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} exists; pass --overwrite to replace it"
        )
    graph = EmbeddingGraph(
        verifier.mods.front_end, verifier.mods.embedding_model
    )
    staging = make_temporary_folder(folder, f".{ONNX_FILE}.tmp-")
    try:
        staged = staging / ONNX_FILE
        exporter = _export_graph(
            graph, verifier.sample_rate, staged, opset, exporter
        )
        errors = check_onnx_embeddings(verifier, staged, tolerance)
        record = {
            "file": ONNX_FILE,
            "sha256": file_checksum(staged),
            "opset": int(opset),
            "exporter": exporter,
            "inputs": {
                "wavs": "float32 [batch, samples]",
                "wav_lens": "float32 [batch], relative lengths in (0, 1]",
            },
            "outputs": {
                "embeddings": "float32 [batch, embedding], not normalised"
            },
            "embedding_size": errors.pop("embedding_size"),
            "sample_rate": int(verifier.sample_rate),
            "versions": _versions(),
            "sources": _source_records(folder),
            "weights_sha256": weights_digest(verifier),
            "check": errors,
        }
        with open(staged, "rb+") as handle:  # on disk before the rename
            os.fsync(handle.fileno())
        os.replace(staged, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_json_atomic(folder / ONNX_INFO, record)
    sync_folder(folder)
    return record


def check_onnx_embeddings(verifier, onnx_path, tolerance=1e-4):
    """Compares an ONNX graph with the eager model on padded batches.

    Seeded random waveforms (of batch sizes and lengths other than the
    trace's) are embedded by onnxruntime and by ``verifier._embed``; each
    utterance is also embedded alone by onnxruntime.

    Arguments
    ---------
    verifier : SpeakerVerifier
        The eager model.
    onnx_path : str or os.PathLike
        The graph.
    tolerance : float
        Largest absolute difference of normalised embeddings allowed.

    Returns
    -------
    dict
        ``max_abs_error`` (onnxruntime vs PyTorch), ``max_batch_error``
        (batched vs alone, onnxruntime), ``tolerance``, ``batches`` (the
        seconds of the check's utterances) and ``embedding_size``.

    Raises
    ------
    OnnxExportError
        If an error exceeds ``tolerance`` (or is not finite), or the
        graph gives the wrong shape.
    """
    from unipool_lobes.inference.audio import pad_waveforms
    from unipool_lobes.inference.onnx_runtime import OnnxEmbedder

    embedder = OnnxEmbedder(onnx_path)
    generator = torch.Generator().manual_seed(0)
    rate = verifier.sample_rate
    worst, worst_batch, size = 0.0, 0.0, None
    for seconds in _CHECK_BATCHES:
        signals = [
            0.1
            * torch.randn(
                max(int(s * rate), verifier.min_samples), generator=generator
            )
            for s in seconds
        ]
        wavs, wav_lens = pad_waveforms(signals)
        exported = embedder(wavs, wav_lens)
        eager, _ = verifier._embed(wavs, wav_lens)
        eager = eager[:, 0].cpu()
        if exported.shape != eager.shape:
            raise OnnxExportError(
                f"{onnx_path}: the graph gives embeddings of shape "
                f"{tuple(exported.shape)}, PyTorch {tuple(eager.shape)}"
            )
        size = int(eager.shape[1])
        worst = max(worst, _max_difference(exported, eager))
        for row, signal in enumerate(signals):
            alone = embedder(signal[None], torch.ones(1))
            worst_batch = max(
                worst_batch, _max_difference(exported[row : row + 1], alone)
            )
    for name, error in (("PyTorch", worst), ("alone", worst_batch)):
        if not error <= tolerance:  # also NaN
            raise OnnxExportError(
                f"{onnx_path}: the ONNX embeddings differ from {name} "
                f"by {error:.3g} (normalised, max abs) > {tolerance:g}; "
                "nothing written"
            )
    return {
        "max_abs_error": worst,
        "max_batch_error": worst_batch,
        "tolerance": float(tolerance),
        "batches": [list(seconds) for seconds in _CHECK_BATCHES],
        "embedding_size": size,
    }


def _max_difference(a, b):
    """Largest absolute difference of the L2-normalised rows."""
    return float(
        (F.normalize(a.double(), dim=-1) - F.normalize(b.double(), dim=-1))
        .abs()
        .max()
    )


def _export_graph(graph, sample_rate, path, opset, exporter):
    """Exports ``graph`` to ``path``; returns the exporter that worked."""
    wavs = torch.randn(len(_TRACE_SECONDS), int(sample_rate * 1.0))
    wav_lens = torch.tensor(_TRACE_SECONDS, dtype=torch.float32)
    failures = []
    for name in EXPORTERS[exporter]:
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _EXPORT_CALLS[name](graph, wavs, wav_lens, path, opset)
            return name
        except Exception as error:  # noqa: BLE001 - all reported below
            first = str(error).splitlines()[0] if str(error) else ""
            failures.append(f"{name} exporter: {type(error).__name__}: {first}")
    raise OnnxExportError("the ONNX export failed: " + "; ".join(failures))


def _export_torchscript(graph, wavs, wav_lens, path, opset):
    """``torch.onnx.export`` with the TorchScript exporter."""
    torch.onnx.export(
        graph,
        (wavs, wav_lens),
        str(path),
        dynamo=False,
        opset_version=opset,
        input_names=["wavs", "wav_lens"],
        output_names=["embeddings"],
        dynamic_axes={
            "wavs": {0: "batch", 1: "samples"},
            "wav_lens": {0: "batch"},
            "embeddings": {0: "batch"},
        },
    )


def _export_dynamo(graph, wavs, wav_lens, path, opset):
    """``torch.onnx.export`` with the dynamo exporter (torch.export)."""
    dynamic = torch.export.Dim.DYNAMIC
    program = torch.onnx.export(
        graph,
        (wavs, wav_lens),
        dynamo=True,
        opset_version=opset,
        dynamic_shapes={
            "wavs": {0: dynamic, 1: dynamic},
            "wav_lens": {0: dynamic},
        },
        optimize=True,
        verbose=False,
        input_names=["wavs", "wav_lens"],
        output_names=["embeddings"],
    )
    program.save(str(path))


_EXPORT_CALLS = {
    "torchscript": _export_torchscript,
    "dynamo": _export_dynamo,
}


def _source_records(folder):
    """``{checkpoint file: sha256}`` of the folder's source checkpoints."""
    return {
        name: file_checksum(folder / name)
        for name in SOURCE_CHECKPOINTS
        if (folder / name).is_file()
    }


def _versions():
    """The versions of the tools that made and checked the graph."""
    import onnx
    import onnxruntime

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
