"""Shared pytest fixtures: tiny local HF speech models, written once.

Authors
 * unipool-sv developers 2026
"""

import json

import pytest

from unipool_lobes.local_models import write_local_model


@pytest.fixture(scope="session")
def local_ssl_model(tmp_path_factory):
    """A factory of local model folders, each written once per session.

    ``make(family="wav2vec2", feat_extract_norm="group", do_normalize=False,
    size="tiny", seed=0, **config_overrides) -> str`` returns the folder of
    that model (see ``unipool_lobes.local_models.write_local_model``); the
    same arguments give the same folder without writing it again.

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
