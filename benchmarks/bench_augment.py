"""Benchmark: CPU cost of the LAP waveform augmentation per training crop.

Writes, in a temp dir, a mini MUSAN and RIRS_NOISES (``data_prep.
mini_noise``; RIRs ``--rir-seconds`` long, default 1 s), prepares their
manifests (``data_prep.noise_corpora``) and an ``--utterance-seconds``
(default 8 s, about VoxCeleb2's mean) 16 kHz wav, then measures in one
process with one torch thread (a data-loader worker's view), in CPU
milliseconds per item:

* reading a random 2 s crop of the utterance from disk (as the recipe's
  ``read_mono``: ``speechbrain.dataio.audio_io.load`` with an offset,
  down-mixed): the reference;
* reading + each augmentation type forced (``WaveformAugmenter.
  apply_type``): reverb, noise, music, babble, television;
* reading + the augmenter at p = 0.6 (what an item costs on average);
* phase 1 as the authors run it: reading the whole utterance, speed
  perturbation (1.0/0.9/1.1 drawn 0.6/0.2/0.2) on it, a random 2 s crop
  (a row without the augmenter, then one with it at p = 0.6).

Each row is the best of ``--repeats`` runs of ``--items`` items (fixed
generator seeds), all in the same run, with its ratio to reading alone.
From the per-item cost it derives the number of loader workers that keep
one GPU fed: ``ceil(batch * ms / 1000 / step_seconds)``, for a batch of
``--batch`` (512) items and a training step of ``--step-seconds`` (0.5 s,
an assumption: pass the step time measured on your GPU). Files were just
written, so they are in the page cache: the numbers are CPU cost; a cold
disk adds its own latency.

Usage: python benchmarks/bench_augment.py [--items 200] [--step-seconds 0.5]

Authors
 * unipool-sv developers 2026
"""

import argparse
import math
import pathlib
import shutil
import tempfile
import time

import numpy as np
import soundfile
import torch
from speechbrain.dataio.audio_io import load as load_audio

from data_prep.mini_corpus import make_speaker_profile, synthesize_utterance
from data_prep.mini_noise import write_mini_musan, write_mini_rirs
from data_prep.noise_corpora import prepare_noise_corpora
from unipool_lobes.dataio.augment import (
    AUGMENT_TYPES,
    SpeedPerturbation,
    WaveformAugmenter,
)
from unipool_lobes.dataio.cropping import random_crop_start, wrap_pad

RATE = 16000
CROP = 2 * RATE


def make_corpora(root, utterance_seconds, rir_seconds):
    """Writes the utterance and the noise corpora; returns their paths."""
    root = pathlib.Path(root)
    speech = []
    for number in range(3):
        profile = make_speaker_profile(f"p{300 + number}", seed=number)
        audio = synthesize_utterance(
            profile, np.random.default_rng(number), duration=3.0
        )
        speech.append(root / f"speech{number}.wav")
        soundfile.write(speech[-1], audio, RATE)
    utterance = root / "utterance.wav"
    soundfile.write(
        utterance,
        synthesize_utterance(
            make_speaker_profile("p400"),
            np.random.default_rng(9),
            duration=utterance_seconds,
        ),
        RATE,
    )
    write_mini_musan(
        root,
        speech,
        noise_seconds=(30.0, 20.0, 12.0),
        music_seconds=(30.0, 20.0),
        speech_seconds=(30.0, 20.0, 12.0),
    )
    write_mini_rirs(
        root,
        n_real=4,
        rooms=(("smallroom", 4), ("mediumroom", 4)),
        rir_seconds=rir_seconds,
    )
    paths = prepare_noise_corpora(root, root, root / "prep", num_workers=1)
    return utterance, paths["musan"], paths["rirs"]


def read_crop(path, generator, n_frames):
    """A random ``CROP`` of ``path`` (whole file: ``n_frames``), mono."""
    start = random_crop_start(n_frames, CROP, generator)
    signal, _ = load_audio(str(path), frame_offset=start, num_frames=CROP)
    return signal[0] if signal.shape[0] == 1 else signal.mean(dim=0)


def read_whole(path):
    """The whole file, mono."""
    signal, _ = load_audio(str(path))
    return signal[0] if signal.shape[0] == 1 else signal.mean(dim=0)


def measure(function, items, repeats):
    """Best-of-``repeats`` CPU milliseconds per item of ``function(g)``."""
    best = math.inf
    for _ in range(repeats):
        generators = [torch.Generator().manual_seed(s) for s in range(items)]
        start = time.process_time()
        for generator in generators:
            function(generator)
        best = min(best, (time.process_time() - start) / items * 1e3)
    return best


def main():
    """Builds the corpora, measures every row, prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--step-seconds", type=float, default=0.5)
    parser.add_argument("--utterance-seconds", type=float, default=8.0)
    parser.add_argument("--rir-seconds", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    root = tempfile.mkdtemp(prefix="bench_augment_")
    try:
        utterance, musan, rirs = make_corpora(
            root, args.utterance_seconds, args.rir_seconds
        )
        n_frames = soundfile.info(str(utterance)).frames
        augmenter = WaveformAugmenter(musan, rirs)
        speed = SpeedPerturbation()
        sizes = augmenter.pool_sizes()
        print(
            f"pools: {sizes}; utterance {args.utterance_seconds} s; RIRs "
            f"{args.rir_seconds} s; {args.items} items, best of "
            f"{args.repeats}; 1 torch thread",
            flush=True,
        )

        def speed_crop(generator):
            signal, _ = speed(read_whole(utterance), generator)
            start = random_crop_start(signal.shape[0], CROP, generator)
            return wrap_pad(signal[start : start + CROP], CROP)

        def phase1(generator):
            return augmenter(speed_crop(generator), generator)

        rows = [
            (
                "read 2 s crop (reference)",
                lambda g: read_crop(utterance, g, n_frames),
            )
        ]
        for kind in AUGMENT_TYPES:
            rows.append(
                (
                    f"read + {kind}",
                    lambda g, kind=kind: augmenter.apply_type(
                        read_crop(utterance, g, n_frames), kind, g
                    ),
                )
            )
        rows.append(
            (
                "read + augmenter p=0.6",
                lambda g: augmenter(read_crop(utterance, g, n_frames), g),
            )
        )
        rows.append(
            (
                f"read whole {args.utterance_seconds:g} s + speed + crop",
                speed_crop,
            )
        )
        rows.append(
            (
                f"phase 1: read whole {args.utterance_seconds:g} s + speed "
                "+ crop + augmenter p=0.6",
                phase1,
            )
        )
        results = []
        for label, function in rows:
            function(torch.Generator().manual_seed(12345))  # warm-up
            results.append((label, measure(function, args.items, args.repeats)))
            print(f"{label}: {results[-1][1]:.2f} ms", flush=True)
        reference = results[0][1]
        print()
        print("| per item (one worker, one thread) | CPU ms | x reading |")
        print("|---|---|---|")
        for label, ms in results:
            print(f"| {label} | {ms:.2f} | {ms / reference:.1f} |")
        print()
        print(
            f"Loader workers to feed one GPU step of {args.batch} items in "
            f"{args.step_seconds:g} s (assumed step time):"
        )
        for label, ms in (results[-3], results[-1]):
            workers = math.ceil(args.batch * ms / 1000 / args.step_seconds)
            print(f"* {label}: {workers} workers ({ms:.2f} ms per item)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
