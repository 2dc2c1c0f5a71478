"""Strict, offline loading of a pretrained folder's checkpoints.

SpeechBrain's ``Pretrainer`` only logs missing or unexpected keys: here
every ``torch.nn.Module`` loadable is loaded with
:func:`load_state_dict_strict` (all keys and shapes, or an error that names
them), the files are checked against the checksums of ``export.json``, and
the folder is read in place, never looked up on the hub.

Authors
 * unipool-sv developers 2026
"""

import hashlib
import json
import os
import pathlib

import torch
from hyperpyyaml import load_hyperpyyaml

from unipool_lobes.training.checkpoint_files import (
    check_finite_parameters,
    load_state_dict,
    verify_files,
)

__all__ = [
    "EXPORT_INFO",
    "CheckpointMismatchError",
    "load_pretrained_hparams",
    "load_state_dict_strict",
    "weights_digest",
]

# The export record of a pretrained folder (``unipool_lobes.inference.export``).
EXPORT_INFO = "export.json"


class CheckpointMismatchError(RuntimeError):
    """A checkpoint whose keys or shapes do not fit the module's."""


def load_state_dict_strict(module, path):
    """Loads a ``.ckpt`` state dict into ``module``, all keys or an error.

    Usable as a ``Pretrainer`` custom hook (``hook(obj, path)``).

    Arguments
    ---------
    module : torch.nn.Module
        The module to fill.
    path : str or os.PathLike
        A state dict saved with ``torch.save``.

    Raises
    ------
    CheckpointMismatchError
        If keys are missing or unexpected, or shapes differ; the message
        names the file, the module class and the keys.
    unipool_lobes.training.checkpoints.CheckpointCorruptError
        If the file is unreadable (truncated, corrupt) or holds NaN or
        infinite values.

    Example
    -------
    >>> path = str(getfixture("tmp_path") / "linear.ckpt")
    >>> torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    >>> load_state_dict_strict(torch.nn.Linear(3, 2), path)
    >>> try:
    ...     load_state_dict_strict(torch.nn.Linear(4, 2), path)
    ... except CheckpointMismatchError as error:
    ...     print(str(error).split(" does not fit ")[1])
    Linear: shape mismatches: weight (checkpoint [2, 3], model [2, 4])
    """
    state = load_state_dict(path)
    check_finite_parameters(path, state)
    expected = module.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    misshaped = [
        f"{key} (checkpoint {list(state[key].shape)}, model "
        f"{list(expected[key].shape)})"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    if missing or unexpected or misshaped:
        problems = []
        for name, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", misshaped),
        ):
            if keys:
                shown = ", ".join(keys[:10])
                more = f" and {len(keys) - 10} more" if len(keys) > 10 else ""
                problems.append(f"{name}: {shown}{more}")
        raise CheckpointMismatchError(
            f"{path} does not fit {type(module).__name__}: "
            + "; ".join(problems)
        )
    module.load_state_dict(state, strict=True)


def load_pretrained_hparams(
    source, hparams_file="hyperparams.yaml", overrides=None
):
    """Loads a pretrained folder's hyperparams and checkpoints, strictly.

    Every ``torch.nn.Module`` loadable of the yaml's ``pretrainer``
    (``<name>.ckpt`` in the folder unless the yaml gives a path) is
    loaded with :func:`load_state_dict_strict`; ``label_encoder.txt``,
    when present, fills the ``label_encoder``.

    Arguments
    ---------
    source : str or os.PathLike
        The pretrained folder (never a hub id).
    hparams_file : str
        The yaml file in the folder.
    overrides : dict, optional
        Overrides for the yaml.

    Returns
    -------
    folder : pathlib.Path
        The folder.
    hparams : dict
        The loaded hyperparams, ``savedir`` set to the folder.

    Raises
    ------
    FileNotFoundError
        If the folder, its yaml or a checkpoint file is missing.
    CheckpointMismatchError
        If a checkpoint does not fit its module.
    unipool_lobes.training.checkpoints.CheckpointCorruptError
        If a file differs from the checksum ``export.json`` records,
        or a checkpoint holds non-finite values.
    ValueError
        If the yaml has no ``pretrainer``.
    """
    folder = pathlib.Path(os.path.expanduser(os.fspath(source)))
    if not folder.is_dir():
        raise FileNotFoundError(f"pretrained model folder not found: {source}")
    hparams_path = folder / hparams_file
    if not hparams_path.is_file():
        raise FileNotFoundError(f"no {hparams_file} in {folder}")
    export_info = folder / EXPORT_INFO
    if export_info.is_file():
        try:
            records = json.loads(export_info.read_text("utf-8"))["files"]
        except (ValueError, KeyError, TypeError):
            records = {}  # exported before checksums were recorded
        verify_files(folder, records, what="model folder")
    with open(hparams_path, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides or {})
    pretrainer = hparams.get("pretrainer")
    if pretrainer is None:
        raise ValueError(f"{hparams_path} has no 'pretrainer' entry")
    for name, loadable in pretrainer.loadables.items():
        if name not in pretrainer.paths:
            checkpoint = folder / f"{name}.ckpt"
            if not checkpoint.is_file():
                raise FileNotFoundError(
                    f"{checkpoint} not found (loadable {name!r} of "
                    f"{hparams_path})"
                )
            pretrainer.add_paths({name: str(checkpoint)})
        if isinstance(loadable, torch.nn.Module):
            pretrainer.custom_hooks.setdefault(name, load_state_dict_strict)
    pretrainer.set_collect_in(None)
    pretrainer.collect_files(default_source=str(folder))
    pretrainer.load_collected()
    label_file = folder / "label_encoder.txt"
    label_encoder = hparams.get("label_encoder")
    if label_file.is_file() and label_encoder is not None:
        label_encoder.load(label_file)
        _check_label_count(label_encoder, hparams["modules"], label_file)
    hparams["savedir"] = str(folder)
    return folder, hparams


def _check_label_count(label_encoder, modules, label_file):
    """Checks the labels against the classifier's outputs, when it has one."""
    weight = getattr(modules.get("classifier"), "weight", None)
    if weight is None:
        label_encoder.ignore_len()
        return
    if len(label_encoder) != weight.shape[0]:
        raise ValueError(
            f"{label_file} has {len(label_encoder)} labels but the classifier "
            f"has {weight.shape[0]} outputs"
        )
    label_encoder.expect_len(weight.shape[0])


def weights_digest(verifier):
    """The SHA-256 of the front-end's and backend's weights (state dicts).

    Covers the SSL model wherever its weights come from (the folder's
    ``front_end.ckpt``, a local model folder or the hub cache).

    Arguments
    ---------
    verifier : SpeakerVerifier
        The loaded model.

    Returns
    -------
    str
        64 hex digits.

    Example
    -------
    >>> from unipool_lobes.frontends.local_models import write_local_model
    >>> from unipool_lobes.frontends.ssl import MultiLayerSSL
    >>> from unipool_lobes.inference.speaker import SpeakerVerifier
    >>> from unipool_lobes.models.unipool.model import UniPool
    >>> folder = write_local_model(str(getfixture("tmp_path")))
    >>> modules = {
    ...     "front_end": MultiLayerSSL(folder),
    ...     "embedding_model": UniPool(32, 2, conv_channels=8),
    ... }
    >>> verifier = SpeakerVerifier(modules=modules, hparams={})
    >>> digest = weights_digest(verifier)
    >>> with torch.no_grad():
    ...     _ = modules["embedding_model"].embedding.bias.add_(1.0)
    >>> len(digest), weights_digest(verifier) == digest
    (64, False)
    """
    digest = hashlib.sha256()
    for name in ("front_end", "embedding_model"):
        state = verifier.mods[name].state_dict()
        for key in sorted(state):
            tensor = state[key].detach().cpu().contiguous()
            digest.update(f"{name}.{key}:{tensor.dtype}:".encode())
            digest.update(f"{list(tensor.shape)}:".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()
