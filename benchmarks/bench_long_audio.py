"""Benchmark: peak memory and time of embedding long recordings on CPU.

``SpeakerVerifier.encode_files`` on one recording of 1, 5 and 10 minutes
with a base-size model (wav2vec 2.0 base architecture, 95M parameters,
random weights, written to a temporary folder, and the paper's UniPool
backend, 768 x 12 layers), chunked (the default 10 s windows, 1 s
overlap, one window per forward: ``unipool_lobes.inference.long_audio``)
against whole-file embedding (``chunk_seconds=None``, today's path; only
at 1 minute: its memory grows with the length and its attention maps with
the square of it, 10.8 GB for one map at 5 minutes). ``--window`` sets
another window (e.g. 20).

Each measurement runs in a fresh process (loading the model, then embedding
the file once after a 1 s warm-up file) that reports its own peak
resident set (``ru_maxrss``: model, audio and activations), its resident
set after loading and the warm-up (``VmRSS``: the model's share) and the
time of the embedding alone. Columns: seconds, seconds per audio minute
(constant when time is linear in the length) and its ratio to the first
row's, peak RSS in GB. Targets: <= 1.5 GB at 10 minutes, time linear in
length. Files: 16 kHz mono PCM-16 wav of noise with a speech-like
envelope.

Usage: python benchmarks/bench_long_audio.py [--quick] [--threads 2]
[--window 10] (``--quick``: 20 s whole and chunked, 60 s chunked: a smoke
test of the script).

Authors
 * unipool-sv developers 2026
"""

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile
import torch

from unipool_lobes.frontends.local_models import write_local_model
from unipool_lobes.inference.long_audio import DEFAULT_CHUNK_SECONDS
from unipool_lobes.models.unipool.model import UniPool

SAMPLE_RATE = 16000
SEED = 0
TARGET_GB = 1.5
GB = 1024**3

# (minutes, chunked); whole files only for 1 minute: at 5 minutes (15,000
# frames) one attention map of the base model is 12 x 15,000^2 floats
ROWS = ((1, True), (5, True), (10, True), (1, False))
QUICK_ROWS = ((1 / 3, True), (1, True), (1 / 3, False))

PRETRAINED_YAML = """\
sample_rate: {rate}
threshold: 0.5

front_end: &front_end !new:unipool_lobes.frontends.ssl.MultiLayerSSL
  source: {source}

embedding_model: &backend !new:unipool_lobes.models.unipool.UniPool
  input_size: 768
  num_layers: 12

modules:
  front_end: *front_end
  embedding_model: *backend

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
  loadables:
    embedding_model: *backend
"""


def write_pretrained(folder):
    """A pretrained folder: base-size SSL model + random UniPool.

    Arguments
    ---------
    folder : pathlib.Path
        Where to write it.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    source = write_local_model(folder / "ssl_base", size="base", seed=SEED)
    torch.manual_seed(SEED)
    backend = UniPool(input_size=768, num_layers=12)
    torch.save(backend.state_dict(), folder / "embedding_model.ckpt")
    (folder / "hyperparams.yaml").write_text(
        PRETRAINED_YAML.format(rate=SAMPLE_RATE, source=source)
    )
    return folder


def write_recording(path, seconds):
    """Writes a noise-like recording with a speech-like envelope.

    Arguments
    ---------
    path : pathlib.Path
        The wav file.
    seconds : float
        Its length.

    Returns
    -------
    str
        The path.
    """
    generator = np.random.default_rng(SEED)
    with soundfile.SoundFile(
        path, "w", SAMPLE_RATE, 1, subtype="PCM_16"
    ) as out:
        total, step = int(seconds * SAMPLE_RATE), 60 * SAMPLE_RATE
        for offset in range(0, total, step):
            count = min(step, total - offset)
            time_axis = np.arange(offset, offset + count) / SAMPLE_RATE
            envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * time_axis) ** 2
            signal = 0.1 * envelope * generator.standard_normal(count)
            out.write(signal.astype("float32"))
    return str(path)


def _resident_bytes():
    """This process's resident set now (``VmRSS``), in bytes."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def child(folder, wav, warmup, chunked, threads):
    """One measurement, in this (fresh) process; prints a JSON line.

    Arguments
    ---------
    folder : str
        The pretrained folder.
    wav : str
        The recording.
    warmup : str
        A 1 s file embedded first.
    chunked : float
        The window in seconds, or 0: whole files.
    threads : int
        Torch threads.
    """
    from unipool_lobes.inference.speaker import SpeakerVerifier

    torch.set_num_threads(threads)
    verifier = SpeakerVerifier.from_hparams(folder, run_opts={"device": "cpu"})
    verifier.configure_long_audio(chunk_seconds=chunked or None)
    verifier.encode_files([warmup], progress=False)
    loaded = _resident_bytes()
    start = time.perf_counter()
    embedding = verifier.encode_files([wav], progress=False)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_bytes": peak,
                "loaded_bytes": loaded,
                "finite": bool(torch.isfinite(embedding).all()),
            }
        )
    )


def measure(folder, wav, warmup, chunked, threads):
    """Runs :func:`child` in a fresh process.

    Arguments
    ---------
    folder : pathlib.Path
        The pretrained folder.
    wav : str
        The recording.
    warmup : str
        The warm-up file.
    chunked : float
        The window in seconds, or 0: whole files.
    threads : int
        Torch threads.

    Returns
    -------
    dict
        What the child printed.
    """
    command = [
        sys.executable,
        __file__,
        "--child",
        str(folder),
        wav,
        warmup,
        str(chunked),
        "--threads",
        str(threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown_table(results):
    """The table, with ratios to the first chunked row's seconds per minute.

    Arguments
    ---------
    results : list of dict
        ``minutes``, ``window`` (seconds, 0: whole file), ``seconds``,
        ``peak_bytes``, ``loaded_bytes``.

    Returns
    -------
    str
        A markdown table.

    Example
    -------
    >>> rows = [
    ...     {
    ...         "minutes": 1,
    ...         "window": 20,
    ...         "seconds": 30.0,
    ...         "peak_bytes": GB,
    ...         "loaded_bytes": GB / 2,
    ...     },
    ...     {
    ...         "minutes": 10,
    ...         "window": 20,
    ...         "seconds": 330.0,
    ...         "peak_bytes": GB,
    ...         "loaded_bytes": GB / 2,
    ...     },
    ... ]
    >>> print(markdown_table(rows).splitlines()[-1])
    | 10 | 20 s windows | 330.0 | 33.0 | 1.10 | 1.00 | 0.50 |
    """
    reference = next(row for row in results if row["window"])
    per_minute = reference["seconds"] / reference["minutes"]
    lines = [
        "| audio (min) | embedding | seconds | s per audio min | "
        "x first row | peak RSS (GB) | RSS after loading (GB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results:
        rate = row["seconds"] / row["minutes"]
        mode = f"{row['window']:g} s windows" if row["window"] else "whole"
        lines.append(
            f"| {row['minutes']:g} | {mode} | {row['seconds']:.1f} | "
            f"{rate:.1f} | {rate / per_minute:.2f} | "
            f"{row['peak_bytes'] / GB:.2f} | {row['loaded_bytes'] / GB:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    """Runs the rows and prints the table.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    list of dict
        The measured rows.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--window", type=float, default=DEFAULT_CHUNK_SECONDS, help="seconds"
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        folder, wav, warmup, chunked = args.child
        child(folder, wav, warmup, float(chunked), args.threads)
        return []
    rows = QUICK_ROWS if args.quick else ROWS
    results = []
    with tempfile.TemporaryDirectory() as temporary:
        temporary = pathlib.Path(temporary)
        folder = write_pretrained(temporary)
        warmup = write_recording(temporary / "warmup.wav", 1.0)
        for minutes, chunked in rows:
            wav = temporary / f"{minutes:g}min.wav"
            if not wav.exists():
                write_recording(wav, minutes * 60)
            window = args.window if chunked else 0
            found = measure(folder, str(wav), warmup, window, args.threads)
            if not found["finite"]:
                raise RuntimeError(f"non-finite embedding: {minutes} min")
            results.append({"minutes": minutes, "window": window, **found})
            print(
                f"{minutes:g} min, window {window:g} s: "
                f"{found['seconds']:.1f} s, "
                f"{found['peak_bytes'] / GB:.2f} GB",
                flush=True,
            )
    print(
        f"\nCPU, {args.threads} torch threads, base-size wav2vec 2.0 + "
        f"UniPool (random weights); target <= {TARGET_GB} GB peak at 10 min, "
        "time linear in length\n"
    )
    print(markdown_table(results))
    return results


if __name__ == "__main__":
    main()
