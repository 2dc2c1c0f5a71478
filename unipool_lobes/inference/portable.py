"""The SSL front-end of a pretrained folder, made portable.

A run's ``MultiLayerSSL`` names its SSL model by ``source``: a hub id or a
folder of the training machine. The export rewrites that definition so the
folder needs no path at load time (:func:`portable_front_end`): ``source``,
``save_path``, ``config_overrides`` and the ``from_pretrained`` options
go, and ``config:`` (the model's HF config after the run's overrides,
inlined), ``sample_rate`` and ``do_normalize`` come instead; the weights
are the folder's ``front_end.ckpt`` (the fine-tuned checkpoint, or, for a
frozen model, the state dict of the front-end the run's definition builds:
:func:`front_end_state`). With ``ssl_from_hub`` a frozen model whose
source is a hub id keeps ``source`` (and downloads it at load time)
instead, without a ``front_end.ckpt``. A fine-tuning schedule's
``frozen_steps`` (and its step counter in the checkpoint,
:func:`copy_fine_tuned_state`) is training-only: the exported front-end is
frozen, and ``frozen_steps`` with ``freeze: True`` is refused.

Authors
 * unipool-sv developers 2026
"""

import inspect
import io
import os
import pathlib
import shutil

import torch
from hyperpyyaml import load_hyperpyyaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from unipool_lobes.frontends.ssl_sources import (
    portable_config,
    read_feature_extractor,
    resolve_source,
)
from unipool_lobes.inference.pretrained_yaml import round_trip_yaml
from unipool_lobes.training.checkpoint_files import load_state_dict

__all__ = [
    "FRONT_END_CKPT",
    "copy_fine_tuned_state",
    "front_end_state",
    "is_ssl_definition",
    "portable_front_end",
]

FRONT_END_CKPT = "front_end.ckpt"

# Entries of a MultiLayerSSL definition that locate the SSL model.
_LOCATION_ENTRIES = ("source", "save_path", "config_overrides")

# Training-only entries, dropped from the (frozen) exported front-end.
_TRAINING_ENTRIES = ("frozen_steps",)

# The frozen-phase step counter of a fine-tuned front-end's checkpoint.
_STEP_COUNTER = "training_forwards"


def is_ssl_definition(definition):
    """Whether a yaml definition builds a ``MultiLayerSSL`` from a source.

    Arguments
    ---------
    definition : object
        A node of a round-trip loaded yaml.

    Returns
    -------
    bool
        True for a ``!new:...MultiLayerSSL`` mapping holding ``source``.

    Example
    -------
    >>> text = "f: !new:unipool_lobes.frontends.ssl.MultiLayerSSL\\n  source: x"
    >>> is_ssl_definition(round_trip_yaml().load(text)["f"])
    True
    """
    tag = getattr(getattr(definition, "tag", None), "value", None) or ""
    return (
        isinstance(definition, CommentedMap)
        and tag.endswith(".MultiLayerSSL")
        and "source" in definition
    )


def portable_front_end(definition, fine_tuned=False, ssl_from_hub=False):
    """The front-end definition of a pretrained folder, and its weights.

    Arguments
    ---------
    definition : ruamel.yaml.comments.CommentedMap
        The run's front-end definition, references resolved and a local
        ``source`` absolute.
    fine_tuned : bool
        Whether the run's checkpoint holds ``front_end.ckpt``.
    ssl_from_hub : bool
        Keep the hub id of a frozen model (no ``front_end.ckpt``).

    Returns
    -------
    definition : object
        The definition to export (the given one unchanged when it builds
        no SSL model from a source).
    embedded : bool
        Whether the folder holds ``front_end.ckpt``.
    record : dict
        ``ssl_source`` (the hub id, or the local folder's name),
        ``ssl_weights`` (``front_end.ckpt`` or ``hub``) and, when embedded,
        ``ssl_model_type`` for ``export.json``; empty when there is no SSL
        model.

    Raises
    ------
    ValueError
        For ``ssl_from_hub`` with a local source, a fine-tuned model or no
        SSL front-end.

    Example
    -------
    >>> from unipool_lobes.frontends.local_models import write_local_model
    >>> folder = write_local_model(str(getfixture("tmp_path") / "w2v"))
    >>> text = "f: !new:unipool_lobes.frontends.ssl.MultiLayerSSL\\n"
    >>> node = round_trip_yaml().load(text + f"  source: {folder}")["f"]
    >>> out, embedded, record = portable_front_end(node)
    >>> "source" in out, out["config"]["model_type"], embedded
    (False, 'wav2vec2', True)
    >>> record["ssl_source"], folder in str(dict(out))
    ('w2v', False)
    >>> portable_front_end(node, ssl_from_hub=True)
    Traceback (most recent call last):
    ...
    ValueError: --ssl-from-hub needs a hub id; w2v is a local folder
    """
    if not is_ssl_definition(definition):
        if ssl_from_hub:
            raise ValueError(
                "--ssl-from-hub: the run's front-end builds no SSL model from "
                "a source (MultiLayerSSL with source:)"
            )
        return definition, fine_tuned, {}
    source = resolve_source(os.fspath(definition["source"]))
    local = os.path.isdir(source)
    name = pathlib.Path(source).name if local else source
    if ssl_from_hub:
        if local:
            raise ValueError(
                f"--ssl-from-hub needs a hub id; {name} is a local folder"
            )
        if fine_tuned:
            raise ValueError(
                f"--ssl-from-hub: the run fine-tuned {name}, so its weights "
                "(front_end.ckpt) are always embedded; leave the flag out"
            )
        out = _copy_without(definition, ("save_path", *_TRAINING_ENTRIES))
        return out, False, {"ssl_source": name, "ssl_weights": "hub"}
    kwargs = _from_pretrained_kwargs(definition)
    config = portable_config(
        source,
        definition.get("save_path"),
        definition.get("config_overrides"),
        **kwargs,
    )
    do_normalize, sample_rate = read_feature_extractor(
        source, definition.get("save_path")
    )
    dropped = (*_LOCATION_ENTRIES, *_TRAINING_ENTRIES, *kwargs)
    out = _copy_without(definition, dropped)
    if out.get("do_normalize") is None:
        out["do_normalize"] = do_normalize
    if out.get("sample_rate") is None:
        out["sample_rate"] = sample_rate
    out["config"] = _yaml_node(config)
    record = {
        "ssl_source": name,
        "ssl_weights": FRONT_END_CKPT,
        "ssl_model_type": config["model_type"],
    }
    return out, True, record


def front_end_state(definition):
    """The state dict of the front-end a yaml definition builds.

    Arguments
    ---------
    definition : object
        A front-end definition (a round-trip yaml node, references
        resolved).

    Returns
    -------
    dict
        Its ``state_dict()``.

    Example
    -------
    >>> text = "f: !new:torch.nn.Linear\\n  in_features: 2\\n  out_features: 1"
    >>> sorted(front_end_state(round_trip_yaml().load(text)["f"]))
    ['bias', 'weight']
    """
    text = io.StringIO()
    round_trip_yaml().dump({"front_end": definition}, text)
    return load_hyperpyyaml(text.getvalue())["front_end"].state_dict()


def copy_fine_tuned_state(source, target):
    """Copies a fine-tuned ``front_end.ckpt`` for a pretrained folder.

    The frozen-phase step counter (``training_forwards``, saved when the
    run had ``frozen_steps``) is left out: the exported front-end is
    frozen and has no such buffer. Any other checkpoint is copied as is.

    Arguments
    ---------
    source : str or os.PathLike
        The run checkpoint's ``front_end.ckpt``.
    target : str or os.PathLike
        The file to write.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> state = {"w": torch.ones(1), "training_forwards": torch.tensor(3)}
    >>> torch.save(state, folder / "run.ckpt")
    >>> copy_fine_tuned_state(folder / "run.ckpt", folder / "out.ckpt")
    >>> sorted(torch.load(folder / "out.ckpt"))
    ['w']
    """
    state = load_state_dict(source)
    if _STEP_COUNTER not in state:
        shutil.copyfile(source, target)
        return
    del state[_STEP_COUNTER]
    torch.save(state, target)


def _from_pretrained_kwargs(definition):
    """The entries of a definition that MultiLayerSSL passes to HF."""
    from unipool_lobes.frontends.ssl import MultiLayerSSL

    named = set(inspect.signature(MultiLayerSSL.__init__).parameters)
    return {
        key: value
        for key, value in definition.items()
        if key not in named and key not in _LOCATION_ENTRIES
    }


def _copy_without(definition, keys):
    """A copy of a tagged mapping without ``keys``, its tag kept."""
    out = CommentedMap(
        (key, value) for key, value in definition.items() if key not in keys
    )
    out.yaml_set_ctag(definition.tag)
    return out


def _yaml_node(value):
    """Plain nested values as ruamel nodes; lists of scalars in flow style."""
    if isinstance(value, dict):
        return CommentedMap((key, _yaml_node(v)) for key, v in value.items())
    if isinstance(value, list | tuple):
        node = CommentedSeq(_yaml_node(item) for item in value)
        if not any(isinstance(item, dict | list | tuple) for item in value):
            node.fa.set_flow_style()
        return node
    return value
