"""Cost of the exact-padding SSL front-end against plain batching.

``MultiLayerSSL(exact_padding=True)`` runs the group-norm CNN of base models
on each utterance's true samples (utterances of equal length together);
``exact_padding=False`` runs it once on the padded batch. This benchmark
times one frozen forward pass of each on CPU, for a wav2vec2 base-size model
(random weights, written to a temporary folder) and a tiny one, and checks
what each costs in accuracy: the largest difference, over all layers and
valid frames, between the shortest utterance in the batch and alone.

Run::

    python benchmarks/bench_ssl_frontend.py [--batch-size 16] [--repeats 3]

Modes are interleaved run by run so that a busy machine slows both alike;
the table gives medians of wall-clock and process CPU time.

Authors
 * unipool-sv developers 2026
"""

import argparse
import statistics
import tempfile
import time

import torch
from transformers.utils import logging as hf_logging

from unipool_lobes.frontends.local_models import write_local_model
from unipool_lobes.frontends.ssl import MultiLayerSSL

SAMPLE_RATE = 16000


def spread_lengths(batch_size, shortest_s, longest_s):
    """Lengths in samples spread evenly from shortest_s to longest_s.

    Arguments
    ---------
    batch_size : int
        How many lengths.
    shortest_s : float
        Shortest length, seconds.
    longest_s : float
        Longest length, seconds.

    Returns
    -------
    torch.Tensor
        ``[batch_size]`` lengths in samples (long), shuffled.

    Example
    -------
    >>> sorted(spread_lengths(3, 2.0, 8.0).tolist())
    [32000, 80000, 128000]
    """
    seconds = torch.linspace(shortest_s, longest_s, batch_size)
    lengths = (seconds * SAMPLE_RATE).round().long()
    order = torch.randperm(
        batch_size, generator=torch.Generator().manual_seed(0)
    )
    return lengths[order]


def time_modes(folder, lengths, repeats):
    """Times exact and plain forwards; measures batch-vs-alone differences.

    Arguments
    ---------
    folder : str
        Local model folder.
    lengths : torch.Tensor
        ``[B]`` lengths in samples.
    repeats : int
        Timed runs per mode (after one warm-up run each).

    Returns
    -------
    dict
        Per mode (True = exact): median wall seconds, median CPU seconds and
        the largest batch-vs-alone difference.
    """
    generator = torch.Generator().manual_seed(0)
    wav = torch.randn(len(lengths), int(lengths.max()), generator=generator)
    wav *= torch.arange(wav.shape[1]) < lengths.unsqueeze(1)
    relative = lengths.float() / lengths.max()
    models = {
        exact: MultiLayerSSL(folder, exact_padding=exact)
        for exact in (True, False)
    }
    walls = {True: [], False: []}
    cpus = {True: [], False: []}
    outputs = {}
    for run in range(repeats + 1):
        for exact, ssl in models.items():
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            outputs[exact], _ = ssl(wav, relative)
            if run > 0:
                walls[exact].append(time.perf_counter() - wall_start)
                cpus[exact].append(time.process_time() - cpu_start)

    shortest = int(lengths.argmin())
    results = {}
    for exact, ssl in models.items():
        alone, _ = ssl(wav[shortest : shortest + 1, : lengths[shortest]])
        valid = alone.shape[2]
        difference = outputs[exact][shortest, :, :valid] - alone[0]
        results[exact] = {
            "wall": statistics.median(walls[exact]),
            "cpu": statistics.median(cpus[exact]),
            "diff": difference.abs().max().item(),
        }
    return results


def table_row(name, lengths, results):
    """One markdown row of the results table."""
    exact, plain = results[True], results[False]
    seconds = lengths.float() / SAMPLE_RATE
    return (
        f"| {name} | {len(lengths)} | {seconds.min():.0f}-{seconds.max():.0f} "
        f"| {exact['wall']:.3f} | {plain['wall']:.3f} "
        f"| {exact['wall'] / plain['wall']:.2f} "
        f"| {exact['cpu'] / plain['cpu']:.2f} "
        f"| {exact['diff']:.1e} | {plain['diff']:.1e} |"
    )


def main(argv=None):
    """Runs the benchmark and prints the markdown table.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tiny-batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--model-dir",
        help="folder for the local models (default: a temporary folder)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    with tempfile.TemporaryDirectory() as scratch:
        root = args.model_dir or scratch
        base = write_local_model(f"{root}/wav2vec2_base", "wav2vec2", "base")
        tiny = write_local_model(f"{root}/wav2vec2_tiny", "wav2vec2", "tiny")
        cases = [
            ("wav2vec2 base", base, spread_lengths(args.batch_size, 2.0, 8.0)),
            (
                "wav2vec2 base, equal 3 s crops",
                base,
                spread_lengths(args.batch_size, 3.0, 3.0),
            ),
            (
                "wav2vec2 tiny",
                tiny,
                spread_lengths(args.tiny_batch_size, 2.0, 8.0),
            ),
        ]
        rows = []
        for name, folder, lengths in cases:
            rows.append(
                table_row(
                    name, lengths, time_modes(folder, lengths, args.repeats)
                )
            )

    print(
        f"CPU, torch threads = {args.threads}, frozen, median of "
        f"{args.repeats} runs per mode (modes interleaved).\n"
    )
    print(
        "| model | batch | lengths (s) | exact s/batch | plain s/batch "
        "| wall ratio | CPU-time ratio | max diff exact | max diff plain |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    print(
        "\nmax diff: largest |batched - alone| over all layers and valid "
        "frames of the shortest utterance in the batch."
    )


if __name__ == "__main__":
    main()
