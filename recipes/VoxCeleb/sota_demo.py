#!/usr/bin/env python3
"""Runs the three-phase LAP pipeline end to end with no data or hub.

It writes a mini VoxCeleb (synthetic speakers in VoxCeleb1's and the
authors' VoxCeleb2 layouts, with lists in the published form), a mini
MUSAN and a mini RIRS_NOISES in their real layouts, and a tiny WavLM with
random weights, then runs the *same* ``train.py`` and
``hparams/<backend>_vox2_sota_phase{1,2,3}.yaml`` as the full pipeline,
changed by command-line overrides only (the corpora, the tiny model, a
short CPU schedule): phase 1 with the front-end frozen, speed-perturbed
classes, augmentation and the margin ramp; phase 2 fine-tuning the SSL
model from phase 1's best checkpoint; phase 3 with the large margin from
phase 2's, then the scoring back-end (mean subtraction, AS-norm, QMF). It
prints EER, minDCF and Cllr after each stage.

Usage (from anywhere)::

    python recipes/VoxCeleb/sota_demo.py [--output_folder results/sota_demo]

Authors
 * unipool-sv developers 2026
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys

from data_prep.mini_corpus import write_mini_voxceleb_setting
from data_prep.mini_noise import write_mini_musan, write_mini_rirs
from unipool_lobes.frontends.local_models import write_local_model

RECIPE = pathlib.Path(__file__).resolve().parent

# Synthetic speakers under VoxCeleb-style IDs: 16 train, 6 held out for
# checkpoint selection, 6 tested.
DEMO_GROUPS = {
    "vox1-dev": ["id10001"],
    "vox1-test": [f"id{10270 + k}" for k in range(6)],
    "vox2-dev": [f"id{100 + k:05d}" for k in range(16)],
    "vox2-test": [f"id{200 + k:05d}" for k in range(6)],
}
DEMO_AUDIO = {
    "duration_range": (1.5, 3.0),
    "videos_per_speaker": 3,
    "utterances_per_video": 2,
}

# Per phase: the schedule (epochs of batches_per_epoch batches, the last
# skipped) of the demo, and phase 1's learning rates (a backend trained
# from scratch on little data); phases 2 and 3 keep the yamls' (5e-5 and
# 5e-6: ten times phase 2's breaks the tiny SSL model).
DEMO_PHASES = {
    1: {
        "epochs": 4,
        "batches_per_epoch": 31,
        "margin_ramp_epochs": 2,
        "max_lr": 0.005,
        "min_lr": 0.0001,
    },
    2: {"epochs": 2, "batches_per_epoch": 21},
    3: {
        "epochs": 1,
        "batches_per_epoch": 21,
        "crop_seconds": 3.0,
        "grad_accumulation_factor": 2,
        "backend_top_k": 8,
        "calibration_trials": 2000,
    },
}


def phase_overrides(inputs, output_folder, phase, backend="lap"):
    """The overrides that turn a phase yaml into the demo's run.

    Arguments
    ---------
    inputs : dict
        ``data_folder``, ``paper_lists``, ``musan_folder``,
        ``rirs_folder``, ``ssl_source`` and the two preparation folders.
    output_folder : str
        The demo's folder; the phase runs in ``<output_folder>/phase<n>``.
    phase : int
        1, 2 or 3.
    backend : str
        ``lap`` or ``unipool``.

    Returns
    -------
    list of str
        The overrides, in ``--key=value`` form.

    Example
    -------
    >>> args = phase_overrides({"data_folder": "d"}, "out", 2)
    >>> args[0], "--init_from=out/phase1" in args
    ('--data_folder=d', True)
    """
    sizes = {"emb_dim": 32, "dropout": 0.1}
    if backend == "lap":
        sizes.update(lap_channels=64, num_heads=4)
    else:
        sizes.update(conv_channels=32)
    settings = {
        **inputs,
        "output_folder": f"{output_folder}/phase{phase}",
        "n_vox2_trials_per_class": 150,
        "prep_num_workers": 2,
        "ssl_cache": f"{output_folder}/ssl_cache",
        "ssl_hidden_size": 32,
        "ssl_num_layers": 2,
        **sizes,
        "n_train_speakers": len(DEMO_GROUPS["vox2-dev"]),
        "batch_size": 32,
        "eval_batch_size": 16,
        "crop_seconds": 2.0,
        "num_workers": 0,
        "device": "cpu",
    }
    if phase > 1:
        settings["init_from"] = f"{output_folder}/phase{phase - 1}"
    settings.update(DEMO_PHASES[phase])
    return [f"--{key}={value}" for key, value in settings.items()]


def stage_line(name, results):
    """One line of the metrics of a stage.

    Arguments
    ---------
    name : str
        The stage.
    results : dict
        Its results (``EER_percent``, ``norm_minDCF_p0.01``, optional
        ``Cllr`` and ``minCllr``).

    Returns
    -------
    str
        The line.

    Example
    -------
    >>> stage_line(
    ...     "phase 1",
    ...     {
    ...         "EER_percent": 12.5,
    ...         "norm_minDCF_p0.01": 0.9,
    ...         "norm_minDCF_p0.05": 0.6,
    ...     },
    ... )
    'phase 1: EER 12.50%  minDCF(0.01) 0.900  minDCF(0.05) 0.600'
    """
    line = (
        f"{name}: EER {results['EER_percent']:.2f}%  minDCF(0.01) "
        f"{results['norm_minDCF_p0.01']:.3f}  minDCF(0.05) "
        f"{results['norm_minDCF_p0.05']:.3f}"
    )
    if "Cllr" in results:
        line += (
            f"  Cllr {results['Cllr']:.3f}  min Cllr {results['minCllr']:.3f}"
        )
    return line


def main(argv=None):
    """Generates the inputs, runs the three phases, prints each stage.

    Arguments
    ---------
    argv : list, optional
        Command-line arguments (defaults to ``sys.argv[1:]``).

    Returns
    -------
    dict
        Stage name to its results.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_folder", default="results/sota_demo")
    parser.add_argument("--backend", choices=["lap", "unipool"], default="lap")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    out = os.path.abspath(args.output_folder)
    data_folder, lists = write_mini_voxceleb_setting(
        os.path.join(out, "voxceleb-mini"),
        DEMO_GROUPS,
        n_trials_per_class=300,
        seed=args.seed,
        **DEMO_AUDIO,
    )
    train_speech = sorted(
        pathlib.Path(out, "voxceleb-mini/vox2/vox2_dev_wav").rglob("*.wav")
    )
    inputs = {
        "data_folder": data_folder,
        "paper_lists": lists,
        "musan_folder": write_mini_musan(
            os.path.join(out, "noise"),
            [str(path) for path in train_speech[:12]],
            seed=args.seed,
        ),
        "rirs_folder": write_mini_rirs(
            os.path.join(out, "noise"), seed=args.seed
        ),
        "ssl_source": write_local_model(
            os.path.join(out, "tiny-wavlm"),
            family="wavlm",
            size="tiny",
            seed=args.seed,
        ),
        "prep_folder": os.path.join(out, "prepared"),
        "noise_prep_folder": os.path.join(out, "noise_prepared"),
    }
    stages = {}
    for phase in (1, 2, 3):
        command = [
            sys.executable,
            str(RECIPE / "train.py"),
            str(RECIPE / f"hparams/{args.backend}_vox2_sota_phase{phase}.yaml"),
            *phase_overrides(inputs, out, phase, args.backend),
        ]
        print(f"Phase {phase}:", " ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=RECIPE)
        folder = os.path.join(out, f"phase{phase}")
        with open(os.path.join(folder, "results.json")) as fin:
            stages[f"phase {phase}"] = json.load(fin)
        print(stage_line(f"phase {phase}", stages[f"phase {phase}"]))
    with open(os.path.join(out, "phase3", "backend_results.json")) as fin:
        for name, results in json.load(fin).items():
            stages[name] = results
            print(stage_line(f"phase 3 + {name}", results), flush=True)
    print("\nVox1-O-style test list of the mini corpus, stage by stage:")
    for name, results in stages.items():
        print("  " + stage_line(name, results))
    return stages


if __name__ == "__main__":
    main()
