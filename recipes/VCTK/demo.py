#!/usr/bin/env python3
"""Runs the VCTK recipe end to end on a fresh machine, with no data or hub.

It writes a mini corpus in VCTK's exact layout (synthetic speakers that
really differ), builds a tiny wav2vec 2.0 with random weights in a local
folder, then runs the *same* ``train.py`` and ``hparams/unipool_vctk.yaml``
as the paper's experiment, changed by command-line overrides only: the
corpus, our own seeded split and trials (the paper's lists name real VCTK
files), the tiny model, and a short CPU schedule. It prints the test EER and
minDCF of the best checkpoint.

Usage (from anywhere)::

    python recipes/VCTK/demo.py [--output_folder results/demo] [--steps 300]

Authors
 * unipool-sv developers 2026
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys

from data_prep.mini_corpus import write_mini_vctk
from unipool_lobes.frontends.local_models import write_local_model

RECIPE = pathlib.Path(__file__).resolve().parent


def demo_overrides(
    corpus, model, output_folder, steps, valid_interval, **extra
):
    """Lists the command-line overrides that turn the paper's yaml into the
    demo: mini corpus, generated split, tiny local model, short schedule.

    Arguments
    ---------
    corpus : str
        Folder of the mini corpus (VCTK layout).
    model : str
        Folder of the local SSL model.
    output_folder : str
        Where the run writes its results.
    steps : int
        Number of optimizer steps.
    valid_interval : int
        Steps between two validations.
    **extra
        Further yaml keys and values, replacing the demo's own.

    Returns
    -------
    list of str
        The overrides, in ``--key=value`` form.

    Example
    -------
    >>> args = demo_overrides("c", "m", "out", 300, 100, batch_size=8)
    >>> args[0], args[-5]
    ('--data_folder=c', '--batch_size=8')
    """
    overrides = {
        "data_folder": corpus,
        "output_folder": output_folder,
        "prep_folder": f"{output_folder}/data",
        "split_source": "generate",
        "ssl_source": model,
        "ssl_cache": f"{output_folder}/ssl_cache",
        "ssl_hidden_size": 32,
        "ssl_num_layers": 2,
        "out_n_neurons": 16,
        "number_of_steps": steps,
        "valid_interval_steps": valid_interval,
        "batch_size": 32,
        "eval_batch_size": 16,
        "lr": 0.005,
        "num_workers": 0,
        "device": "cpu",
    }
    overrides.update(extra)
    return [f"--{key}={value}" for key, value in overrides.items()]


def main(argv=None):
    """Generates the demo inputs, trains, and prints the test metrics.

    Arguments
    ---------
    argv : list, optional
        Command-line arguments (defaults to ``sys.argv[1:]``).

    Returns
    -------
    dict
        The results JSON of the run.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_folder", default="results/demo")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--valid_interval", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    output_folder = os.path.abspath(args.output_folder)
    corpus = write_mini_vctk(
        os.path.join(output_folder, "VCTK-mini"), seed=args.seed
    )
    model = write_local_model(
        os.path.join(output_folder, "tiny-wav2vec2"),
        family="wav2vec2",
        size="tiny",
        seed=args.seed,
    )
    overrides = demo_overrides(
        corpus, model, output_folder, args.steps, args.valid_interval
    )
    command = [
        sys.executable,
        str(RECIPE / "train.py"),
        str(RECIPE / "hparams" / "unipool_vctk.yaml"),
        *overrides,
    ]
    print("Running:", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=RECIPE)

    with open(os.path.join(output_folder, "results.json")) as fin:
        results = json.load(fin)
    print(
        f"Test on held-out synthetic speakers: "
        f"EER {results['EER_percent']:.2f}%  normalised minDCF (p_target "
        f"0.01) {results['norm_minDCF_p0.01']:.4f}  unnormalised min C_det "
        f"{results['min_Cdet_p0.01']:.6f}  ({results['n_trials']} trials)"
    )
    return results


if __name__ == "__main__":
    main()
