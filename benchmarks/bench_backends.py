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

Memory. On CPU, PyTorch allocates with the C allocator, which tracemalloc
does not see; each measurement therefore runs in a fresh subprocess that
builds its model and input, reads its resident set size (RSS), runs, and
reports the peak RSS (``resource.getrusage``) minus that baseline: the
extra memory the step needs on top of model and input. On CUDA the peak is
``torch.cuda.max_memory_allocated`` minus the allocation before the step.

Run from the repository root::

    python benchmarks/bench_backends.py              # CPU, 2 threads
    python benchmarks/bench_backends.py --device cuda

Authors
 * unipool-sv developers 2026
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
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
    parser.add_argument("--worker", choices=sorted(MEASUREMENTS))
    return parser.parse_args(argv)


def _current_rss_bytes():
    """Resident set size of this process now (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize()


def _peak_rss_bytes():
    """Peak resident set size of this process so far (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _build(name, args, device):
    """Returns ``(step, warm_up)``: the measured call and whether to warm."""
    torch.manual_seed(0)
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
    from unipool_lobes.unipool import UniPool

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
    elif args.worker.startswith("unipool_train"):
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
    >>> table = markdown_table({
    ...     "backbone": {"times": [2.0], "peak_bytes": 4 * MIB},
    ...     "unipool_forward": {"times": [0.5, 0.4], "peak_bytes": MIB},
    ... })
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


if __name__ == "__main__":
    main()
