"""Benchmark: overhead of the pretrained interface over the bare model.

Embedding extraction real-time factor (processing time / audio duration)
of ``SpeakerVerifier.encode_files`` on N wav files (header read, decoding,
resampling check, length-sorted batches, padding, strict shape checks,
lengths passed) against the bare ``front_end`` + ``embedding_model``
forward of the same modules on the same waveforms, already in memory,
batched the same way. The target is an overhead of at most 15 %.

Two rows, CPU, ``torch.set_num_threads(1)`` (``--threads``):

* tiny: the test model (``write_local_model(size="tiny")``, hidden 32, 2
  layers) with a UniPool backend over it (``conv_channels=128``); the
  forward is so cheap that file I/O dominates: a floor, not a target;
* base: wav2vec 2.0 base architecture (``size="base"``, 95M parameters,
  random weights, written to a temporary folder) with the paper's UniPool
  backend (768 x 12 layers, random weights).

Files: 16 kHz mono PCM-16 wav, durations spread evenly between 2 and 6 s.
Times are the best of ``--repeats`` (5) alternating runs after a warm-up,
as wall-clock time (the RTF columns) and as this process's CPU time: on a
machine shared with other jobs the wall-clock ratio is noisy, the CPU-time
ratio (with one torch thread) is not, and it is the overhead reported.
The embeddings of both paths are checked equal to 1e-5.

Usage: python benchmarks/bench_inference.py [--threads 1] [--repeats 5]

Authors
 * unipool-sv developers 2026
"""

import argparse
import pathlib
import tempfile
import time

import numpy as np
import soundfile
import torch

from unipool_lobes.frontends.local_models import write_local_model
from unipool_lobes.inference.speaker import SpeakerVerifier, pad_waveforms
from unipool_lobes.models.unipool.model import UniPool

SAMPLE_RATE = 16000
BATCH_SIZE = 8
TOLERANCE = 1e-5
TARGET_OVERHEAD = 0.15
SEED = 0

# name, model size, hidden size, layers, number of files
ROWS = (
    ("tiny", "tiny", 32, 2, 16),
    ("base", "base", 768, 12, 6),
)

PRETRAINED_YAML = """\
sample_rate: {rate}
threshold: 0.5

front_end: &front_end !new:unipool_lobes.frontends.ssl.MultiLayerSSL
  source: {source}

embedding_model: &backend !new:unipool_lobes.models.unipool.UniPool
  input_size: {hidden}
  num_layers: {layers}

modules:
  front_end: *front_end
  embedding_model: *backend

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
  loadables:
    embedding_model: *backend
"""


def write_files(folder, count):
    """Writes ``count`` noise-like wav files of 2 to 6 s; returns paths."""
    generator = np.random.default_rng(SEED)
    paths = []
    for index, seconds in enumerate(np.linspace(2.0, 6.0, count)):
        n_samples = int(seconds * SAMPLE_RATE)
        envelope = 0.5 + 0.5 * np.sin(np.linspace(0, 20, n_samples)) ** 2
        signal = 0.1 * envelope * generator.standard_normal(n_samples)
        path = pathlib.Path(folder) / f"utt{index:03d}.wav"
        soundfile.write(path, signal.astype("float32"), SAMPLE_RATE)
        paths.append(str(path))
    return paths


def write_pretrained(folder, size, hidden, layers):
    """A pretrained folder: local SSL model + randomly initialised UniPool."""
    folder = pathlib.Path(folder)
    source = write_local_model(folder / f"ssl_{size}", size=size, seed=SEED)
    torch.manual_seed(SEED)
    backend = UniPool(input_size=hidden, num_layers=layers)
    torch.save(backend.state_dict(), folder / "embedding_model.ckpt")
    (folder / "hyperparams.yaml").write_text(
        PRETRAINED_YAML.format(
            rate=SAMPLE_RATE, source=source, hidden=hidden, layers=layers
        )
    )
    return folder


def bare_forward(verifier, waveforms, order):
    """The modules' forward on in-memory waveforms, same batches."""
    embeddings = [None] * len(waveforms)
    with torch.no_grad():
        for first in range(0, len(order), BATCH_SIZE):
            rows = order[first : first + BATCH_SIZE]
            wavs, wav_lens = pad_waveforms([waveforms[i] for i in rows])
            feats, feat_lens = verifier.mods.front_end(wavs, wav_lens)
            batch = verifier.mods.embedding_model(feats, feat_lens)
            for row, embedding in zip(rows, batch.squeeze(1), strict=True):
                embeddings[row] = embedding
    return torch.stack(embeddings)


def measure_row(name, size, hidden, layers, n_files, repeats):
    """Times both paths for one model; returns the table row values."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(tmp, n_files)
        folder = write_pretrained(tmp, size, hidden, layers)
        start = time.perf_counter()
        verifier = SpeakerVerifier.from_hparams(
            folder, run_opts={"device": "cpu"}
        )
        load_seconds = time.perf_counter() - start
        waveforms = [
            torch.from_numpy(soundfile.read(p, dtype="float32")[0])
            for p in paths
        ]
        audio_seconds = sum(w.shape[0] for w in waveforms) / SAMPLE_RATE
        order = sorted(range(n_files), key=lambda i: waveforms[i].shape[0])

        def interface():
            return verifier.encode_files(
                paths, batch_size=BATCH_SIZE, progress=False
            )

        def bare():
            return bare_forward(verifier, waveforms, order)

        from_interface, from_bare = interface(), bare()  # warm-up
        error = float((from_interface - from_bare).abs().max())
        if error > TOLERANCE:
            raise AssertionError(f"{name}: embeddings differ by {error}")
        wall = {"interface": [], "bare": []}
        cpu = {"interface": [], "bare": []}
        for _ in range(repeats):
            for label, function in (("interface", interface), ("bare", bare)):
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                function()
                wall[label].append(time.perf_counter() - start_wall)
                cpu[label].append(time.process_time() - start_cpu)
    interface_seconds = min(wall["interface"])
    bare_seconds = min(wall["bare"])
    cpu_ratio = min(cpu["interface"]) / min(cpu["bare"])
    return {
        "model": f"{name} ({hidden} x {layers} layers)",
        "files": n_files,
        "audio": audio_seconds,
        "load": load_seconds,
        "bare_rtf": bare_seconds / audio_seconds,
        "interface_rtf": interface_seconds / audio_seconds,
        "ratio": interface_seconds / bare_seconds,
        "cpu_ratio": cpu_ratio,
        "overhead": cpu_ratio - 1,
        "error": error,
    }


def main(argv=None):
    """Runs the rows and prints the markdown table.

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
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", nargs="+", default=[row[0] for row in ROWS])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    results = [
        measure_row(*row, repeats=args.repeats)
        for row in ROWS
        if row[0] in args.rows
    ]
    print(
        f"\nCPU, {args.threads} threads, batch {BATCH_SIZE}, best of "
        f"{args.repeats}; target overhead <= {TARGET_OVERHEAD:.0%}\n"
    )
    print(
        "| model | files | audio (s) | load (s) | bare RTF | "
        "encode_files RTF | ratio (wall) | ratio (CPU) | overhead (CPU) "
        "| max abs diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in results:
        print(
            f"| {row['model']} | {row['files']} | {row['audio']:.1f} | "
            f"{row['load']:.2f} | {row['bare_rtf']:.4f} | "
            f"{row['interface_rtf']:.4f} | {row['ratio']:.3f} | "
            f"{row['cpu_ratio']:.3f} | {row['overhead']:+.1%} | "
            f"{row['error']:.1e} |"
        )
    return results


if __name__ == "__main__":
    main()
