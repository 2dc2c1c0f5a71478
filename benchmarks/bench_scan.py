"""Benchmark: scanning a VoxCeleb-sized tree of WAV files.

Generates ``--files`` (default 100,000) tiny WAV files (a 44-byte header and
16 samples) as ``<root>/wav/idNNNNN/<video>/NNNNN.wav``, 10 videos of 10
files per speaker, then measures, each in a fresh subprocess:

* the header readers alone on 10,000 files: ``data_prep.scan
  .read_wav_header`` against ``soundfile.info``;
* ``data_prep.scan.scan_speakers`` over the whole tree, with 1 and with 2
  worker processes (no cache), and again with every speaker cached (a
  resumed scan after completion);
* ``data_prep.scan.write_manifest_from_cache``: the training manifest of
  every speaker streamed from the caches.

Files per second are wall-clock; peak memory is the largest peak resident
set (``ru_maxrss``) of the measuring process and of its worker processes.
The files were just written, so they are in the page cache: the numbers
are the CPU cost of the scan; a cold disk adds its own latency.

Usage: python benchmarks/bench_scan.py [--files 100000] [--root DIR]

Authors
 * unipool-sv developers 2026
"""

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

FILES_PER_VIDEO = 10
VIDEOS_PER_SPEAKER = 10
HEADER_SAMPLE = 10_000


def _wav_blob():
    """The bytes of a 16-sample, 16 kHz, 16-bit mono WAV file."""
    import numpy as np
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(16, dtype="int16"), 16000, format="WAV")
    return buffer.getvalue()


def generate_tree(root, n_files):
    """Writes the tree; returns the speaker folders."""
    blob = _wav_blob()
    per_speaker = FILES_PER_VIDEO * VIDEOS_PER_SPEAKER
    n_speakers = -(-n_files // per_speaker)
    folders = {}
    written = 0
    for index in range(n_speakers):
        speaker = f"id{10001 + index:05d}"
        folders[speaker] = os.path.join(root, "wav", speaker)
        for video in range(VIDEOS_PER_SPEAKER):
            folder = os.path.join(folders[speaker], f"video{video:07d}")
            os.makedirs(folder)
            for number in range(1, FILES_PER_VIDEO + 1):
                if written == n_files:
                    break
                path = os.path.join(folder, f"{number:05d}.wav")
                handle = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
                os.write(handle, blob)
                os.close(handle)
                written += 1
    return folders


def _peak_mb():
    """Largest peak RSS of this process and of its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _child(task, root, cache, workers):
    """Runs one measurement in this process and prints a JSON line."""
    from data_prep import scan

    folders = {
        name: os.path.join(root, "wav", name)
        for name in sorted(os.listdir(os.path.join(root, "wav")))
    }
    start = time.perf_counter()
    if task in ("ours", "soundfile"):
        import soundfile

        reader = scan.read_wav_header if task == "ours" else soundfile.info
        paths = []
        for folder in folders.values():
            for video in sorted(os.listdir(folder)):
                for name in sorted(os.listdir(os.path.join(folder, video))):
                    paths.append(os.path.join(folder, video, name))
                    if len(paths) == HEADER_SAMPLE:
                        break
                if len(paths) == HEADER_SAMPLE:
                    break
            if len(paths) == HEADER_SAMPLE:
                break
        start = time.perf_counter()
        for path in paths:
            reader(path)
        count = len(paths)
    elif task == "scan":
        summary = scan.scan_speakers(
            folders, cache, num_workers=workers, progress=False
        )
        count = summary.n_files
    else:
        count = scan.write_manifest_from_cache(
            os.path.join(cache, "..", "train.csv"), cache, sorted(folders)
        )
    seconds = time.perf_counter() - start
    print(json.dumps({"count": count, "seconds": seconds, "peak": _peak_mb()}))


def _measure(task, root, cache, workers=1):
    """Runs ``_child`` in a fresh interpreter and reads its JSON line."""
    command = [sys.executable, __file__, "--child", task, root, cache]
    command.append(str(workers))
    run = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main():
    """Generates the tree, runs the measurements, prints the table."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        task, root, cache, workers = sys.argv[2:6]
        _child(task, root, cache, int(workers))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--root", default=None, help="where the tree goes")
    parser.add_argument("--keep", action="store_true", help="keep the tree")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="bench_scan_", dir=args.root)
    try:
        start = time.perf_counter()
        folders = generate_tree(root, args.files)
        generated = time.perf_counter() - start
        print(
            f"generated {args.files:,} files of {len(folders):,} speakers "
            f"in {generated:.1f} s ({args.files / generated:,.0f} files/s)",
            flush=True,
        )
        rows = []

        def add(label, result):
            rate = result["count"] / result["seconds"]
            rows.append(
                f"| {label} | {result['count']:,} | {result['seconds']:.2f} "
                f"| {rate:,.0f} | {result['peak']:.0f} |"
            )
            print(rows[-1], flush=True)

        for reader in ("ours", "soundfile"):
            name = (
                "header: data_prep.scan.read_wav_header"
                if reader == "ours"
                else "header: soundfile.info"
            )
            add(name, _measure(reader, root, os.path.join(root, "c0")))
        for workers in (1, 2):
            cache = os.path.join(root, f"cache{workers}", "scan_cache")
            add(
                f"scan_speakers, {workers} worker(s), no cache",
                _measure("scan", root, cache, workers),
            )
        add(
            "scan_speakers, 2 workers, all cached (resume)",
            _measure("scan", root, cache, 2),
        )
        add(
            "write_manifest_from_cache (train.csv, streamed)",
            _measure("manifest", root, cache),
        )
        print()
        print("| step | files | seconds | files/s | peak RSS (MB) |")
        print("|---|---|---|---|---|")
        print("\n".join(rows))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
