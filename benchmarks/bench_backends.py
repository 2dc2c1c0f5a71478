"""Speed and peak memory of the UniPool backend next to its SSL backbone.

Measures, for one batch of ``--batch`` utterances of ``--seconds`` seconds
(defaults: 32 x 3 s, i.e. ``T = 150`` frames and hidden states
``[32, 13, 150, 768]``):

- the frozen wav2vec2-base forward (``transformers.Wav2Vec2Config()``
  defaults, random weights: the base architecture), no grad, all hidden
  states returned;
- the UniPool forward (evaluation mode, no grad);
- the UniPool forward + backward (training mode);
- both again on a padded batch (relative lengths spread over 0.5..1), which
  takes the masked path (masked convolution inputs, pools, statistics and
  batch-norm statistics);
- on CUDA also ``UniPool.encode`` (bf16 autocast);

and prints one markdown table with the ratios to the backbone forward.

In the same run it compares every backend of the recipes on the same
hidden states (each with its lobe's defaults, which the VCTK yamls use):
UniPool, the layer-weighted ECAPA-TDNN, MHFA, LAP + ASTP and the
mean-pooling heads of ExploreWV2 and FinetuneWV2: parameter count,
forward (eval, no grad) and forward + backward (train) time per batch,
and the peak memory of each, with ratios to UniPool. A last table counts
the trained parameters of every VCTK recipe yaml, built from the yaml
itself (the SSL models from a local base-size folder with random
weights), and checks UniPool's backend against the authors' count.

Memory. On CPU, PyTorch allocates with the C allocator, which tracemalloc
does not see; each measurement therefore runs in a fresh subprocess that
builds its model and input, reads its resident set size (RSS), runs, and
reports the peak RSS (``resource.getrusage``) minus that baseline: the
extra memory the step needs on top of model and input. On CUDA the peak is
``torch.cuda.max_memory_allocated`` minus the allocation before the step.

Run from the repository root::

    python benchmarks/bench_backends.py              # CPU, 2 threads
    python benchmarks/bench_backends.py --device cuda
    python benchmarks/bench_backends.py --skip-systems  # no yaml table

Authors
 * unipool-sv developers 2026
"""

import argparse
import json
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

SAMPLE_RATE = 16000
FRAMES_PER_SECOND = 50
MIB = 2**20
MEASUREMENTS = {
    "backbone": "wav2vec2-base forward (frozen, no grad)",
    "unipool_forward": "UniPool forward (eval, no grad)",
    "unipool_forward_padded": "UniPool forward, padded batch (masked)",
    "unipool_train": "UniPool forward + backward (train)",
    "unipool_train_padded": "UniPool forward + backward, padded (masked)",
    "unipool_encode_bf16": "UniPool encode (eval, bf16 autocast)",
}
HIDDEN_STATES = 13  # a base model: the CNN output and 12 layers
HIDDEN_SIZE = 768
# The backends compared, in table order, with their labels (the VCTK
# yamls using them: unipool, wavlm_ecapa, mhfa, lap, explorewv2 and
# finetunewv2).
BACKENDS = {
    "unipool": "UniPool",
    "layer_weighted_ecapa": "layer-weighted ECAPA-TDNN",
    "mhfa": "MHFA",
    "lap": "LAP + ASTP",
    "mean_pool_first": "mean pool, layer 1",
    "mean_pool_last": "mean pool, last",
}
BACKEND_WORKERS = [
    f"{mode}:{key}" for key in BACKENDS for mode in ("forward", "train")
]
RECIPE = pathlib.Path(__file__).resolve().parents[1] / "recipes" / "VCTK"
# UniPool's backend (input projection to attentive statistics pooling),
# measured on the authors' code for D=768, L=12 (spec/unipool.md, 2).
UNIPOOL_REFERENCE_PARAMETERS = 2_869_476


def parse_args(argv=None):
    """Parses the command line.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
        The options.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed backend forwards"
    )
    parser.add_argument(
        "--train-repeats",
        type=int,
        default=2,
        help="timed backend forward + backward runs",
    )
    parser.add_argument(
        "--backbone-repeats",
        type=int,
        default=1,
        help="timed runs of the backbone (slow on CPU)",
    )
    parser.add_argument(
        "--skip-systems",
        action="store_true",
        help="leave out the parameter table of the recipe yamls",
    )
    parser.add_argument(
        "--worker", choices=sorted(MEASUREMENTS) + BACKEND_WORKERS
    )
    return parser.parse_args(argv)


def _current_rss_bytes():
    """Resident set size of this process now (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize()


def _peak_rss_bytes():
    """Peak resident set size of this process so far (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build_backend(key):
    """A compared backend with its lobe's defaults, for a base model.

    Arguments
    ---------
    key : str
        A key of ``BACKENDS``.

    Returns
    -------
    torch.nn.Module
        The backend: ``[B, 13, T, 768]`` hidden states and lengths in,
        ``[B, 1, E]`` out.

    Example
    -------
    >>> backend = build_backend("mean_pool_first")
    >>> backend(torch.randn(2, 13, 10, 768)).shape
    torch.Size([2, 1, 768])
    """
    from unipool_lobes.models.lap import LAP
    from unipool_lobes.models.layer_weighted import LayerWeightedECAPA
    from unipool_lobes.models.mean_pool import LayerMeanPool
    from unipool_lobes.models.mhfa import MHFA
    from unipool_lobes.models.unipool.model import UniPool

    builders = {
        "unipool": lambda: UniPool(HIDDEN_SIZE, HIDDEN_STATES - 1),
        "layer_weighted_ecapa": lambda: LayerWeightedECAPA(
            HIDDEN_SIZE, HIDDEN_STATES
        ),
        "mhfa": lambda: MHFA(HIDDEN_SIZE, HIDDEN_STATES),
        "lap": lambda: LAP(HIDDEN_SIZE, HIDDEN_STATES),
        "mean_pool_first": lambda: LayerMeanPool(HIDDEN_SIZE, layer_index=1),
        "mean_pool_last": lambda: LayerMeanPool(HIDDEN_SIZE, layer_index=-1),
    }
    return builders[key]()


def count_parameters(module, trainable_only=False):
    """Number of parameters of a module.

    Arguments
    ---------
    module : torch.nn.Module
        The module.
    trainable_only : bool
        Count only parameters with ``requires_grad``.

    Returns
    -------
    int
        The count.

    Example
    -------
    >>> count_parameters(torch.nn.Linear(3, 2))
    8
    """
    return sum(
        p.numel()
        for p in module.parameters()
        if p.requires_grad or not trainable_only
    )


def _build_backend_step(name, args, device):
    """The measured call of a ``forward:<key>`` or ``train:<key>`` worker."""
    mode, key = name.split(":")
    model = build_backend(key).to(device)
    frames = int(args.seconds * FRAMES_PER_SECOND)
    hidden = torch.randn(
        args.batch, HIDDEN_STATES, frames, HIDDEN_SIZE, device=device
    )
    if mode == "forward":
        model.eval()

        def step():
            with torch.no_grad():
                model(hidden)

        return step
    model.train()

    def step():
        model(hidden).square().sum().backward()
        model.zero_grad(set_to_none=True)

    return step


def _build(name, args, device):
    """Returns ``step``, the measured call of a worker."""
    torch.manual_seed(0)
    if name in BACKEND_WORKERS:
        return _build_backend_step(name, args, device)
    batch = args.batch
    if name == "backbone":
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        model = Wav2Vec2Model(Wav2Vec2Config()).to(device).eval()
        model.requires_grad_(False)
        waves = torch.randn(batch, int(args.seconds * SAMPLE_RATE))
        waves = waves.to(device)

        def step():
            with torch.no_grad():
                model(waves, output_hidden_states=True)

        return step
    from unipool_lobes.models.unipool.model import UniPool

    model = UniPool().to(device)
    frames = int(args.seconds * FRAMES_PER_SECOND)
    hidden = torch.randn(batch, 13, frames, 768, device=device)
    lengths = None
    if name.endswith("_padded"):
        lengths = torch.linspace(0.5, 1.0, batch, device=device)
    if name.startswith("unipool_forward"):
        model.eval()

        def step():
            with torch.no_grad():
                model(hidden, lengths)

    elif name == "unipool_encode_bf16":

        def step():
            model.encode(hidden, autocast_dtype=torch.bfloat16)

    else:
        model.train()
        target = torch.randn(batch, 1, 192, device=device)

        def step():
            (model(hidden, lengths) * target).sum().backward()
            model.zero_grad(set_to_none=True)

    return step


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_worker(args):
    """Runs one measurement in this process and prints it as JSON.

    Arguments
    ---------
    args : argparse.Namespace
        The options, ``args.worker`` naming the measurement.
    """
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    step = _build(args.worker, args, device)
    if args.worker == "backbone":
        repeats = args.backbone_repeats
    elif args.worker.startswith(("unipool_train", "train:")):
        repeats = args.train_repeats
    else:
        repeats = args.repeats
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
    else:
        baseline = _current_rss_bytes()
    times = []
    # On CUDA the first (warm-up) run is not timed; on CPU there is no
    # warm-up to speak of and the backbone is too slow to run twice.
    if device.type == "cuda":
        step()
        _sync(device)
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - baseline
    else:
        peak = _peak_rss_bytes() - baseline
    print(json.dumps({"times": times, "peak_bytes": peak}))


def measure(name, args):
    """Runs one measurement in a fresh subprocess.

    Arguments
    ---------
    name : str
        A key of ``MEASUREMENTS``.
    args : argparse.Namespace
        The options.

    Returns
    -------
    dict
        ``times`` (seconds) and ``peak_bytes``.
    """
    command = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--batch",
        str(args.batch),
        "--seconds",
        str(args.seconds),
        "--repeats",
        str(args.repeats),
        "--backbone-repeats",
        str(args.backbone_repeats),
        "--train-repeats",
        str(args.train_repeats),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown_table(results):
    """Formats the measurements with ratios to the backbone forward.

    Arguments
    ---------
    results : dict
        ``name -> {"times": [...], "peak_bytes": int}``.

    Returns
    -------
    str
        A markdown table.

    Example
    -------
    >>> table = markdown_table(
    ...     {
    ...         "backbone": {"times": [2.0], "peak_bytes": 4 * MIB},
    ...         "unipool_forward": {"times": [0.5, 0.4], "peak_bytes": MIB},
    ...     }
    ... )
    >>> print(table.splitlines()[-1])
    | UniPool forward (eval, no grad) | 0.450 | 0.23 | 1 | 0.25 |
    """
    reference = results["backbone"]
    ref_time = statistics.median(reference["times"])
    ref_memory = reference["peak_bytes"]
    lines = [
        "| step | time (s) | x backbone time | peak memory (MiB) "
        "| x backbone memory |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, result in results.items():
        seconds = statistics.median(result["times"])
        memory = result["peak_bytes"]
        lines.append(
            f"| {MEASUREMENTS[name]} | {seconds:.3f} "
            f"| {seconds / ref_time:.2f} | {memory / MIB:.0f} "
            f"| {memory / ref_memory:.2f} |"
        )
    return "\n".join(lines)


def _ratio(value, reference):
    """``value / reference`` formatted, or a dash when undefined."""
    if value is None or not reference:
        return "—"
    return f"{value / reference:.2f}"


def markdown_backend_table(measurements, parameters):
    """Formats the backend comparison with ratios to UniPool.

    Arguments
    ---------
    measurements : dict
        ``key -> {"forward": result, "train": result or None}``, each
        result ``{"times": [...], "peak_bytes": int}``; ``train`` is None
        for a backend without parameters. Must hold ``"unipool"``.
    parameters : dict
        ``key -> parameter count``.

    Returns
    -------
    str
        A markdown table, one row per backend, in ``BACKENDS`` order.

    Example
    -------
    >>> run = {"times": [0.2], "peak_bytes": 2 * MIB}
    >>> table = markdown_backend_table(
    ...     {
    ...         "unipool": {"forward": run, "train": run},
    ...         "mean_pool_last": {
    ...             "forward": {"times": [0.1], "peak_bytes": MIB},
    ...             "train": None,
    ...         },
    ...     },
    ...     {"unipool": 100, "mean_pool_last": 0},
    ... )
    >>> print(table.splitlines()[-1])
    | mean pool, last | 0 | 0.00 | 0.100 | 0.50 | — | — | 1 | 0.50 | — | — |
    """

    def seconds(result):
        return None if result is None else statistics.median(result["times"])

    def mebibytes(result):
        return None if result is None else result["peak_bytes"] / MIB

    def cell(value, digits):
        return "—" if value is None else f"{value:.{digits}f}"

    reference = measurements["unipool"]
    ref_values = [
        parameters["unipool"],
        seconds(reference["forward"]),
        seconds(reference["train"]),
        mebibytes(reference["forward"]),
        mebibytes(reference["train"]),
    ]
    lines = [
        "| backend | parameters | x UniPool | forward (s) | x UniPool "
        "| forward + backward (s) | x UniPool | forward peak (MiB) "
        "| x UniPool | train peak (MiB) | x UniPool |",
        "| --- |" + " ---: |" * 10,
    ]
    for key, label in BACKENDS.items():
        if key not in measurements:
            continue
        result = measurements[key]
        values = [
            parameters[key],
            seconds(result["forward"]),
            seconds(result["train"]),
            mebibytes(result["forward"]),
            mebibytes(result["train"]),
        ]
        cells = [f"{values[0]:,}", _ratio(values[0], ref_values[0])]
        for value, ref, digits in zip(
            values[1:], ref_values[1:], (3, 3, 0, 0), strict=True
        ):
            cells += [cell(value, digits), _ratio(value, ref)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def system_parameter_counts(model_folder, work_folder):
    """Trained parameters of every VCTK recipe yaml, built from the yaml.

    Each ``recipes/VCTK/hparams/*_vctk.yaml`` is loaded with HyperPyYAML,
    its SSL model (if any) taken from ``model_folder``; the counts are
    those of its modules as the training script trains them.

    Arguments
    ---------
    model_folder : str
        A local base-size SSL model folder (e.g. from
        ``write_local_model(folder, "wav2vec2", "base")``).
    work_folder : str
        Scratch folder for the yamls' output folders.

    Returns
    -------
    dict
        ``yaml stem -> {"embedding_model", "classifier", "front_end",
        "total", "all"}``: parameters of the backend (or whole encoder), of
        the training head, the trainable ones of the front-end, their sum,
        and every parameter of the system (frozen SSL ones included).
    """
    from hyperpyyaml import load_hyperpyyaml

    counts = {}
    for yaml_path in sorted(RECIPE.glob("hparams/*_vctk.yaml")):
        text = yaml_path.read_text(encoding="utf-8")
        overrides = {
            "data_folder": work_folder,
            "output_folder": f"{work_folder}/{yaml_path.stem}",
        }
        if "\nssl_source:" in text:
            overrides["ssl_source"] = model_folder
            overrides["ssl_cache"] = f"{work_folder}/ssl_cache"
        hparams = load_hyperpyyaml(text, overrides)
        row = {
            "embedding_model": count_parameters(hparams["embedding_model"]),
            "classifier": count_parameters(hparams["classifier"]),
            "front_end": count_parameters(
                hparams["front_end"], trainable_only=True
            ),
        }
        row["total"] = sum(row.values())
        row["all"] = sum(
            count_parameters(hparams[name])
            for name in ("front_end", "embedding_model", "classifier")
        )
        counts[yaml_path.stem] = row
    return counts


def markdown_system_table(counts):
    """Formats the parameter counts of the recipes against references.

    Only UniPool's backend has a reference (the authors' code, 2,869,476
    for wav2vec2-base); the paper's figures for the other systems were not
    found in the authors' repository, so none is shown for them.

    Arguments
    ---------
    counts : dict
        From :func:`system_parameter_counts`.

    Returns
    -------
    str
        A markdown table.

    Example
    -------
    >>> row = {
    ...     "embedding_model": 2_869_476,
    ...     "classifier": 13_824,
    ...     "front_end": 0,
    ...     "total": 2_883_300,
    ...     "all": 97_254_452,
    ... }
    >>> table = markdown_system_table({"unipool_vctk": row})
    >>> for cell in table.splitlines()[-1].strip("| ").split(" | "):
    ...     print(cell)
    unipool_vctk
    2,869,476
    13,824
    0
    2,883,300
    97,254,452
    2,869,476 (x 1.0000)
    """
    lines = [
        "| recipe yaml | backend / encoder | training head "
        "| fine-tuned SSL | total trained | all (frozen SSL too) "
        "| reference (backend) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for stem, row in counts.items():
        reference = "not found"
        if stem == "unipool_vctk":
            ratio = row["embedding_model"] / UNIPOOL_REFERENCE_PARAMETERS
            reference = f"{UNIPOOL_REFERENCE_PARAMETERS:,} (x {ratio:.4f})"
        cells = [
            f"{row[key]:,}"
            for key in (
                "embedding_model",
                "classifier",
                "front_end",
                "total",
                "all",
            )
        ]
        lines.append(f"| {stem} | " + " | ".join(cells) + f" | {reference} |")
    return "\n".join(lines)


def main(argv=None):
    """Runs every measurement and prints the table.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments.
    """
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    names = [
        "backbone",
        "unipool_forward",
        "unipool_forward_padded",
        "unipool_train",
        "unipool_train_padded",
    ]
    if args.device == "cuda":
        names.append("unipool_encode_bf16")
    results = {}
    for name in names:
        results[name] = measure(name, args)
        print(f"measured {name}: {results[name]}", file=sys.stderr)
    frames = int(args.seconds * FRAMES_PER_SECOND)
    print(
        f"device {args.device}, threads {args.threads}, batch {args.batch} x "
        f"{args.seconds:g} s (hidden states [{args.batch}, 13, {frames}, "
        f"768]), torch {torch.__version__}\n"
    )
    print(markdown_table(results))

    parameters = {key: count_parameters(build_backend(key)) for key in BACKENDS}
    comparison = {
        "unipool": {
            "forward": results["unipool_forward"],
            "train": results["unipool_train"],
        }
    }
    for key in BACKENDS:
        if key == "unipool":
            continue
        comparison[key] = {"forward": measure(f"forward:{key}", args)}
        comparison[key]["train"] = (
            measure(f"train:{key}", args) if parameters[key] else None
        )
        print(f"measured {key}: {comparison[key]}", file=sys.stderr)
    print(
        "\nEvery backend on the same hidden states (unpadded batch; each "
        "lobe's defaults, as in the VCTK yamls):\n"
    )
    print(markdown_backend_table(comparison, parameters))

    if args.skip_systems:
        return
    from unipool_lobes.frontends.local_models import write_local_model

    with tempfile.TemporaryDirectory() as work_folder:
        model_folder = write_local_model(
            f"{work_folder}/wav2vec2-base", family="wav2vec2", size="base"
        )
        counts = system_parameter_counts(model_folder, work_folder)
    print(
        "\nTrained parameters of each VCTK recipe (72 training speakers; "
        "wav2vec 2.0 base architecture):\n"
    )
    print(markdown_system_table(counts))


if __name__ == "__main__":
    main()
