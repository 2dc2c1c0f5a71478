"""Shared pytest fixtures: tiny local HF speech models, written once.

Authors
 * unipool-sv developers 2026
"""

import json

import pytest

from unipool_lobes.frontends.local_models import write_local_model


@pytest.fixture(scope="session")
def local_ssl_model(tmp_path_factory):
    """A factory of local model folders, each written once per session.

    ``make(family="wav2vec2", feat_extract_norm="group", do_normalize=False,
    size="tiny", seed=0, **config_overrides) -> str`` returns the folder of
    that model (see
    ``unipool_lobes.frontends.local_models.write_local_model``); the same
    arguments give the same folder without writing it again.

    Arguments
    ---------
    tmp_path_factory : pytest.TempPathFactory
        pytest's session temporary folders.

    Returns
    -------
    callable
        ``make`` as above.
    """
    root = tmp_path_factory.mktemp("ssl_models")
    folders = {}

    def make(
        family="wav2vec2",
        feat_extract_norm="group",
        do_normalize=False,
        size="tiny",
        seed=0,
        **config_overrides,
    ):
        key = json.dumps(
            [
                family,
                feat_extract_norm,
                do_normalize,
                size,
                seed,
                config_overrides,
            ],
            sort_keys=True,
        )
        if key not in folders:
            folder = root / f"model_{len(folders)}_{family}_{size}"
            folders[key] = write_local_model(
                folder,
                family=family,
                size=size,
                seed=seed,
                feat_extract_norm=feat_extract_norm,
                do_normalize=do_normalize,
                **config_overrides,
            )
        return folders[key]

    return make


@pytest.fixture(scope="session")
def trained_vctk_run(tmp_path_factory):
    """A VCTK recipe run trained for a few steps, on a mini corpus.

    The recipe's ``train.py`` runs in a subprocess on a generated mini VCTK
    corpus (24 speakers, 6 utterances each) with a tiny local wav2vec2,
    with the demo's overrides (``recipes/VCTK/demo.py:demo_overrides``):
    4 steps, validation every 2, batch 8, 1 s crops. The run folder holds
    ``hyperparams.yaml``, ``save/CKPT+*`` (best validation EER),
    ``save/label_encoder.txt``, ``data/`` (manifests, trials, 16 kHz
    audio), ``scores.txt`` and ``results.json``.

    Arguments
    ---------
    tmp_path_factory : pytest.TempPathFactory
        pytest's session temporary folders.

    Returns
    -------
    pathlib.Path
        The run folder.
    """
    import importlib.util
    import pathlib
    import sys

    import processes

    from data_prep.mini_corpus import write_mini_vctk

    recipe = pathlib.Path(__file__).resolve().parents[1] / "recipes" / "VCTK"
    spec = importlib.util.spec_from_file_location(
        "vctk_demo", recipe / "demo.py"
    )
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)

    root = tmp_path_factory.mktemp("trained_vctk_run")
    corpus = write_mini_vctk(
        str(root / "VCTK-mini"), n_speakers=24, utterances_per_speaker=6, seed=1
    )
    model = write_local_model(
        root / "tiny-wav2vec2", family="wav2vec2", size="tiny", seed=1
    )
    run = root / "run"
    overrides = demo.demo_overrides(corpus, model, str(run), 4, 2, batch_size=8)
    processes.run(
        [
            sys.executable,
            "train.py",
            "hparams/unipool_vctk.yaml",
            *overrides,
            "--crop_seconds=1.0",
        ],
        timeout=300,
        check=True,
        cwd=recipe,
    )
    return run


@pytest.fixture
def tmpfs(tmp_path):
    """A factory of small tmpfs mounts, unmounted after the test.

    ``mount(size="2m") -> pathlib.Path`` mounts a tmpfs of that size (a
    real file system that fills up: writes then fail with ENOSPC, as on a
    full disk); ``read_only(folder)`` remounts one read-only (EROFS even for
    root, which ignores permission bits). The test is skipped where this
    process may not mount file systems.

    Arguments
    ---------
    tmp_path : pathlib.Path
        pytest's temporary folder of the test.

    Yields
    ------
    types.SimpleNamespace
        With ``mount`` and ``read_only``.
    """
    import types

    import processes

    mounted = []

    def mount(size="2m"):
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        done = processes.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder],
            30,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stdout.strip()}")
        mounted.append(folder)
        return folder

    def read_only(folder):
        done = processes.run(
            ["mount", "-o", "remount,ro", str(folder)], 30, check=True
        )
        return done

    yield types.SimpleNamespace(mount=mount, read_only=read_only)
    for folder in reversed(mounted):
        processes.run(["umount", "-l", str(folder)], 30)
