"""``unipool-sv export-onnx`` and the ``--runtime`` option.

::

    unipool-sv export-onnx --model DIR [--opset 18] [--overwrite]
    unipool-sv verify A.wav B.wav --model DIR --runtime onnx

``export-onnx`` writes ``model.onnx`` and ``onnx.json`` into the model
folder, checked against PyTorch first
(:mod:`unipool_lobes.inference.onnx_export`). ``--runtime onnx`` (on
``verify``, ``embed``, ``score`` and the other commands that load a
model) embeds with onnxruntime (:mod:`unipool_lobes.inference.onnx_runtime`);
a folder without the graph, or whose graph was exported from other
checkpoints, is an input error (exit code 2) that says to run
``export-onnx``.

Authors
 * unipool-sv developers 2026
"""

__all__ = [
    "RUNTIME_CHOICES",
    "add_export_onnx_command",
    "add_runtime_option",
    "apply_runtime",
    "run_export_onnx",
]

RUNTIME_CHOICES = ("torch", "onnx")


def add_runtime_option(parser):
    """Adds ``--runtime {torch,onnx}`` to a command that loads a model.

    Arguments
    ---------
    parser : argparse.ArgumentParser
        The command's parser.

    Example
    -------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_runtime_option(parser)
    >>> parser.parse_args(["--runtime", "onnx"]).runtime
    'onnx'
    """
    parser.add_argument(
        "--runtime",
        choices=RUNTIME_CHOICES,
        default="torch",
        help="embed with PyTorch (default) or with onnxruntime on the "
        "folder's model.onnx (unipool-sv export-onnx)",
    )


def add_export_onnx_command(commands):
    """Adds the ``export-onnx`` command.

    Arguments
    ---------
    commands : argparse._SubParsersAction
        The subparsers of ``unipool-sv``.

    Example
    -------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_export_onnx_command(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["export-onnx", "--model", "m"])
    >>> args.opset, args.overwrite
    (18, False)
    """
    from unipool_lobes.inference.cli_arguments import positive_int
    from unipool_lobes.inference.onnx_export import DEFAULT_OPSET, EXPORTERS

    export = commands.add_parser(
        "export-onnx",
        help="write the model folder's ONNX graph (model.onnx), checked "
        "against PyTorch",
    )
    export.add_argument(
        "--model", required=True, help="pretrained folder or training run"
    )
    export.add_argument(
        "--opset",
        type=positive_int,
        default=DEFAULT_OPSET,
        help=f"ONNX opset (default {DEFAULT_OPSET})",
    )
    export.add_argument(
        "--exporter",
        choices=sorted(EXPORTERS),
        default="auto",
        help="torch.onnx.export path: torchscript (seconds), dynamo "
        "(minutes), auto (torchscript, then dynamo if it fails)",
    )
    export.add_argument(
        "--overwrite", action="store_true", help="replace model.onnx"
    )


def run_export_onnx(args):
    """``unipool-sv export-onnx``: exports, checks, prints the record.

    Arguments
    ---------
    args : argparse.Namespace
        With ``model``, ``opset`` and ``overwrite``.
    """
    from unipool_lobes.inference.export import ensure_pretrained
    from unipool_lobes.inference.onnx_export import ONNX_FILE, export_onnx

    folder = ensure_pretrained(args.model)
    record = export_onnx(
        folder,
        opset=args.opset,
        overwrite=args.overwrite,
        exporter=args.exporter,
    )
    check = record["check"]
    print(
        f"{folder}/{ONNX_FILE}: opset {record['opset']}, "
        f"{record['exporter']} exporter; onnxruntime vs PyTorch max abs "
        f"error {check['max_abs_error']:.2g}, batched vs alone "
        f"{check['max_batch_error']:.2g} (normalised embeddings)"
    )


def apply_runtime(verifier, args):
    """Switches a loaded model to onnxruntime when ``--runtime onnx``.

    Arguments
    ---------
    verifier : SpeakerVerifier
        The loaded model.
    args : argparse.Namespace
        With ``runtime`` (absent means torch).

    Returns
    -------
    SpeakerVerifier
        ``verifier``.

    Example
    -------
    >>> import argparse
    >>> apply_runtime("verifier", argparse.Namespace(runtime="torch"))
    'verifier'
    """
    if getattr(args, "runtime", "torch") == "onnx":
        verifier.use_onnx()
    return verifier
