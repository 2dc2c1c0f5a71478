"""Benchmark: CPU embedding time, onnxruntime against eager PyTorch.

The same pretrained folder, the same files, the same batches
(``SpeakerVerifier.encode_files``: reading, length-sorted batches,
padding, lengths): once with the PyTorch runtime (eager, the default
``cnn_batching``) and once with ``use_onnx()`` on the folder's
``model.onnx`` (``unipool-sv export-onnx``), batch sizes 1 and 8.

Model: wav2vec 2.0 base architecture (``write_local_model(size="base")``,
95M parameters, GroupNorm CNN, random weights) with the paper's UniPool
backend (768 x 12 layers, random weights), written to a temporary folder,
then exported (the export's time and check are reported too). Files: 16
kHz mono wav of 3 to 10 s, evenly spread (16 files; ``--quick``: 4 files
of 3 to 5 s, one repeat).

Fairness: both runtimes get the same number of threads (``--threads``,
default 1: ``torch.set_num_threads`` and onnxruntime's
``intra_op_num_threads``; one inter-op thread), onnxruntime with
``ORT_ENABLE_ALL`` graph optimisations, float32 both. Times are the best
of ``--repeats`` (3) alternating runs after a warm-up, wall-clock and this
process's CPU time; on a shared machine the CPU-time ratio is the steadier
one. The embeddings of both runtimes are checked to agree to 1e-4
(normalised, max abs). Target: onnxruntime >= 1.3x faster.

Usage: python benchmarks/bench_onnx.py [--quick] [--threads 1]

Authors
 * unipool-sv developers 2026
"""

import argparse
import json
import pathlib
import tempfile
import time

import numpy as np
import soundfile
import torch
import torch.nn.functional as F

from unipool_lobes.frontends.local_models import write_local_model
from unipool_lobes.inference.onnx_export import ONNX_INFO, export_onnx
from unipool_lobes.inference.speaker import SpeakerVerifier
from unipool_lobes.models.unipool.model import UniPool

SAMPLE_RATE = 16000
SEED = 0
TOLERANCE = 1e-4
TARGET_SPEEDUP = 1.3
HIDDEN, LAYERS = 768, 12

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


def write_files(folder, count, shortest, longest):
    """Writes ``count`` noise-like wav files; returns their paths."""
    generator = np.random.default_rng(SEED)
    paths = []
    for index, seconds in enumerate(np.linspace(shortest, longest, count)):
        n_samples = int(seconds * SAMPLE_RATE)
        envelope = 0.5 + 0.5 * np.sin(np.linspace(0, 20, n_samples)) ** 2
        signal = 0.1 * envelope * generator.standard_normal(n_samples)
        path = pathlib.Path(folder) / f"utt{index:03d}.wav"
        soundfile.write(path, signal.astype("float32"), SAMPLE_RATE)
        paths.append(str(path))
    return paths


def write_pretrained(folder):
    """A pretrained folder: base-size local SSL model + random UniPool."""
    folder = pathlib.Path(folder)
    source = write_local_model(folder / "ssl_base", size="base", seed=SEED)
    torch.manual_seed(SEED)
    backend = UniPool(input_size=HIDDEN, num_layers=LAYERS)
    torch.save(backend.state_dict(), folder / "embedding_model.ckpt")
    (folder / "hyperparams.yaml").write_text(
        PRETRAINED_YAML.format(
            rate=SAMPLE_RATE, source=source, hidden=HIDDEN, layers=LAYERS
        )
    )
    return folder


def _timed(function, repeats, wall, cpu):
    """Appends the wall and CPU seconds of ``repeats`` calls."""
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)


def measure(paths, verifier, batch_size, repeats, threads):
    """Times both runtimes at one batch size; returns the row values."""

    def run():
        return verifier.encode_files(
            paths, batch_size=batch_size, progress=False
        )

    times = {name: ([], []) for name in ("torch", "onnx")}
    embedder = verifier.use_onnx(threads=threads).onnx_embedder
    runtimes = {"torch": None, "onnx": embedder}
    outputs = {}
    for name, runtime in runtimes.items():  # warm-up
        verifier.onnx_embedder = runtime
        outputs[name] = run()
    error = float(
        (
            F.normalize(outputs["torch"], dim=-1)
            - F.normalize(outputs["onnx"], dim=-1)
        )
        .abs()
        .max()
    )
    if error > TOLERANCE:
        raise AssertionError(f"the runtimes differ by {error:.3g}")
    for _ in range(repeats):  # alternating, so load changes hit both
        for name, runtime in runtimes.items():
            verifier.onnx_embedder = runtime
            _timed(run, 1, *times[name])
    verifier.use_torch()
    best = {name: (min(w), min(c)) for name, (w, c) in times.items()}
    return {
        "batch": batch_size,
        "torch_wall": best["torch"][0],
        "onnx_wall": best["onnx"][0],
        "wall_speedup": best["torch"][0] / best["onnx"][0],
        "torch_cpu": best["torch"][1],
        "onnx_cpu": best["onnx"][1],
        "cpu_speedup": best["torch"][1] / best["onnx"][1],
        "error": error,
    }


def main(argv=None):
    """Runs the benchmark and prints the markdown table.

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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--folder",
        help="a folder this benchmark wrote before (kept): reuse its model "
        "and, if there, its model.onnx (then no export is timed)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    count, shortest, longest = (4, 3.0, 5.0) if args.quick else (16, 3.0, 10.0)
    repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(tmp, count, shortest, longest)
        folder = pathlib.Path(args.folder or write_pretrained(tmp))
        verifier = SpeakerVerifier.from_hparams(
            folder, run_opts={"device": "cpu"}
        )
        start = time.perf_counter()
        if (folder / ONNX_INFO).is_file():
            record = json.loads((folder / ONNX_INFO).read_text())
            export = "export reused"
        else:
            record = export_onnx(folder, verifier=verifier)
            export = f"export {time.perf_counter() - start:.0f} s"
        rows = [
            measure(paths, verifier, batch, repeats, args.threads)
            for batch in args.batch_sizes
        ]
    audio = sum(np.linspace(shortest, longest, count))
    print(
        f"\nbase wav2vec2 + UniPool, {count} files ({audio:.0f} s of audio, "
        f"{shortest:g}-{longest:g} s), {args.threads} thread(s), best of "
        f"{repeats}; {export} ({record['exporter']}, "
        f"opset {record['opset']}, check max abs error "
        f"{record['check']['max_abs_error']:.1e})\n"
    )
    print(
        "| batch | torch s | onnxruntime s | speed-up (wall) | torch CPU s "
        "| onnxruntime CPU s | speed-up (CPU) | max abs error |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['batch']} | {row['torch_wall']:.2f} | "
            f"{row['onnx_wall']:.2f} | {row['wall_speedup']:.2f}x | "
            f"{row['torch_cpu']:.2f} | {row['onnx_cpu']:.2f} | "
            f"{row['cpu_speedup']:.2f}x | {row['error']:.1e} |"
        )
    print(f"\ntarget: onnxruntime >= {TARGET_SPEEDUP}x faster")
    return rows


if __name__ == "__main__":
    main()
