"""Exact CNN features of a padded batch: per-length loop vs one masked pass.

``MultiLayerSSL(exact_padding=True)`` can run the group-norm CNN of base
models in two exact ways (``cnn_batching``): ``"per_length"``, one CNN call
per distinct length on the true samples, and ``"masked"``, one call on the
padded batch with the group norm's statistics over each utterance's valid
frames (``unipool_lobes.frontends.masked_cnn``). Naive batching
(``exact_padding=False``: one call, padding in the statistics) is timed
for reference; it is not exact.

Model: the wav2vec 2.0 base architecture (random weights, written to a
temporary folder). Batch: ``--batch-size`` full utterances with lengths
drawn uniformly in ``--min-seconds``-``--max-seconds`` (seeded), so all
lengths differ (the worst case for the loop, the usual one in evaluation
batches). Rows: each way, for the CNN alone and, with ``--front-end``,
for the whole frozen front-end forward (CNN + transformer, all hidden
states). Columns: median seconds per batch, the ratio to the loop's, and
the largest ``|batched - alone|`` over all utterances, valid frames and
(front-end) layers, the alone reference being each utterance run by
itself. Modes are interleaved run by run, so that a busy machine slows
them alike.

Run::

    python benchmarks/bench_cnn_batching.py [--device cpu] [--front-end]
    python benchmarks/bench_cnn_batching.py --quick   # tiny model, smoke

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
# Row label -> (exact_padding, cnn_batching) of the front-end.
MODES = {
    "per-length loop (exact)": (True, "per_length"),
    "masked one pass (exact)": (True, "masked"),
    "naive batching (inexact)": (False, "per_length"),
}
REFERENCE = "per-length loop (exact)"


def uniform_lengths(batch_size, shortest_s, longest_s, seed=0):
    """Lengths in samples drawn uniformly in [shortest_s, longest_s].

    Arguments
    ---------
    batch_size : int
        How many lengths.
    shortest_s : float
        Shortest length, seconds.
    longest_s : float
        Longest length, seconds.
    seed : int
        Seed of the draw.

    Returns
    -------
    torch.Tensor
        ``[batch_size]`` lengths in samples (long).

    Example
    -------
    >>> lengths = uniform_lengths(4, 2.0, 20.0)
    >>> lengths.shape, bool(lengths.min() >= 32000)
    (torch.Size([4]), True)
    >>> torch.equal(lengths, uniform_lengths(4, 2.0, 20.0))
    True
    """
    generator = torch.Generator().manual_seed(seed)
    seconds = shortest_s + (longest_s - shortest_s) * torch.rand(
        batch_size, generator=generator
    )
    return (seconds * SAMPLE_RATE).round().long()


def make_batch(lengths, device, seed=0):
    """Random waveforms, zero-padded, and their relative lengths.

    Arguments
    ---------
    lengths : torch.Tensor
        ``[B]`` lengths in samples.
    device : str
        Where the batch goes.
    seed : int
        Seed of the waveforms.

    Returns
    -------
    wav : torch.Tensor
        ``[B, S]`` waveforms, zero after each length.
    relative : torch.Tensor
        ``[B]`` lengths relative to S.

    Example
    -------
    >>> wav, relative = make_batch(torch.tensor([4, 2]), "cpu")
    >>> wav.shape, relative.tolist(), wav[1, 2:].tolist()
    (torch.Size([2, 4]), [1.0, 0.5], [0.0, 0.0])
    """
    generator = torch.Generator().manual_seed(seed)
    wav = torch.randn(len(lengths), int(lengths.max()), generator=generator)
    wav *= torch.arange(wav.shape[1]) < lengths.unsqueeze(1)
    relative = lengths.double() / lengths.max()
    return wav.to(device), relative.to(device)


def _cnn(ssl, wav, lengths):
    """The front-end's CNN step alone, as its ``_extract`` runs it."""
    exact, batching = ssl.exact_padding, ssl.cnn_batching
    if not exact:
        return ssl._cnn(wav)
    if batching == "masked":
        return ssl._cnn_masked(wav, lengths)
    num_frames = int(ssl.frame_lengths(wav.shape[1]))
    return ssl._cnn_by_length(wav, lengths, num_frames)


def _synchronize(device):
    """Waits for the device's queued work (CUDA), so timings are whole."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_modes(ssl, lengths, device, repeats, front_end, warmup=1):
    """Times every mode; measures the largest difference to alone.

    Arguments
    ---------
    ssl : MultiLayerSSL
        The frozen front-end (its ``exact_padding`` and ``cnn_batching``
        are set per mode, then restored).
    lengths : torch.Tensor
        ``[B]`` lengths in samples.
    device : str
        Where the batch runs.
    repeats : int
        Timed runs per mode.
    front_end : bool
        Time the whole forward (True) or the CNN alone (False).
    warmup : int
        Untimed runs per mode before the timed ones.

    Returns
    -------
    dict
        Per mode label: ``{"seconds": median, "error": max abs difference,
        "peak_mb": peak CUDA memory or None}``.
    """
    wav, relative = make_batch(lengths, device)
    lengths = lengths.to(device)
    saved = ssl.exact_padding, ssl.cnn_batching

    def _run():
        if front_end:
            return ssl(wav, relative)[0]
        return _cnn(ssl, wav, lengths)

    times = {label: [] for label in MODES}
    peaks = {}
    outputs = {}
    with torch.no_grad():
        for run in range(warmup + repeats):
            for label, (exact, batching) in MODES.items():
                ssl.exact_padding, ssl.cnn_batching = exact, batching
                outputs.pop(label, None)
                _synchronize(device)
                if torch.device(device).type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                start = time.perf_counter()
                outputs[label] = _run()
                _synchronize(device)
                if run >= warmup:
                    times[label].append(time.perf_counter() - start)
                if torch.device(device).type == "cuda":
                    peak = torch.cuda.max_memory_allocated(device)
                    peaks[label] = peak / 2**20
        ssl.exact_padding, ssl.cnn_batching = saved
        errors = dict.fromkeys(MODES, 0.0)
        for row, length in enumerate(lengths.tolist()):
            alone = wav[row : row + 1, :length]
            if front_end:
                reference = ssl(alone)[0][0]
                valid = reference.shape[1]
            else:
                reference = ssl._cnn(alone)[0]
                valid = reference.shape[0]
            for label, output in outputs.items():
                batched = output[row, :, :valid] if front_end else output[row]
                difference = batched[..., :valid, :] - reference
                errors[label] = max(
                    errors[label], difference.abs().max().item()
                )
    return {
        label: {
            "seconds": statistics.median(times[label]),
            "error": errors[label],
            "peak_mb": peaks.get(label),
        }
        for label in MODES
    }


def print_table(title, results):
    """Prints one markdown table of ``time_modes`` results.

    Arguments
    ---------
    title : str
        What was timed (a line above the table).
    results : dict
        ``time_modes``'s output.

    Example
    -------
    >>> print_table(
    ...     "x",
    ...     {
    ...         label: {"seconds": 2.0, "error": 0.0, "peak_mb": None}
    ...         for label in MODES
    ...     },
    ... )  # doctest: +ELLIPSIS
    x
    <BLANKLINE>
    | way | s/batch | x loop time | max abs error vs alone |
    ...
    | naive batching (inexact) | 2.000 | 1.00 | 0.0e+00 |
    """
    cuda = any(entry["peak_mb"] is not None for entry in results.values())
    print(f"{title}\n")
    header = "| way | s/batch | x loop time | max abs error vs alone |"
    rule = "| --- | ---: | ---: | ---: |"
    if cuda:
        header += " peak MB |"
        rule += " ---: |"
    print(header)
    print(rule)
    reference = results[REFERENCE]["seconds"]
    for label, entry in results.items():
        line = (
            f"| {label} | {entry['seconds']:.3f} "
            f"| {entry['seconds'] / reference:.2f} "
            f"| {entry['error']:.1e} |"
        )
        if cuda:
            line += f" {entry['peak_mb']:.0f} |"
        print(line)
    print()


def main(argv=None):
    """Runs the benchmark and prints the markdown tables.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--max-seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed runs per way first"
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument(
        "--front-end",
        action="store_true",
        help="also time the whole front-end forward (CNN + transformer)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: tiny model, 4 utterances of 0.5-2 s, 1 repeat",
    )
    args = parser.parse_args(argv)
    size = "base"
    if args.quick:
        size, args.batch_size, args.repeats, args.warmup = "tiny", 4, 1, 1
        args.min_seconds, args.max_seconds = 0.5, 2.0
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    lengths = uniform_lengths(
        args.batch_size, args.min_seconds, args.max_seconds
    )
    padded = len(lengths) * int(lengths.max())
    print(
        f"wav2vec2 {size} (random weights), device {args.device}"
        + (f", {args.threads} torch threads" if args.device == "cpu" else "")
        + f", frozen; batch of {len(lengths)} utterances, "
        f"{args.min_seconds:g}-{args.max_seconds:g} s uniform (seed 0), "
        f"padded / true samples = {padded / int(lengths.sum()):.2f}; median "
        f"of {args.repeats} runs per way after {args.warmup} untimed, ways "
        "interleaved.\n"
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = write_local_model(f"{scratch}/wav2vec2", "wav2vec2", size)
        ssl = MultiLayerSSL(folder).to(args.device)
        print_table(
            "CNN feature encoder only:",
            time_modes(
                ssl, lengths, args.device, args.repeats, False, args.warmup
            ),
        )
        if args.front_end:
            print_table(
                "Whole front-end forward (CNN + transformer, all layers):",
                time_modes(
                    ssl, lengths, args.device, args.repeats, True, args.warmup
                ),
            )


if __name__ == "__main__":
    main()
