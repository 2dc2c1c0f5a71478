"""Converts UniPool weights between the authors' code and ours.

The authors (GitHub sadPororo/UniPool-SV, ``src/benchmarks/UniPool``) keep the
backend in ``SVmodel.encoder``, a ``ModuleDict`` with ``d3net`` (input
projection and D3 blocks), ``l_pool`` (layer attention pooling) and
``t_pool`` (statistics pooling and embedding layer), computing in the
layout ``[B, D, L, T]``. Ours,
:class:`unipool_lobes.models.unipool.UniPool`, holds the same parameters
under other names and, where the authors use 1x1
convolutions on vectors, as linear layers; the conversion renames and
reshapes, nothing else.

Authors
 * unipool-sv developers 2026
"""

import re

import torch

from unipool_lobes.models.authors_keys import (
    backend_keys,
    check_keys,
    layer_entries,
    norm_entries,
)

__all__ = [
    "authors_hparams_from_state_dict",
    "convert_authors_state_dict",
    "convert_to_authors_state_dict",
]

# Parts of the authors' SVmodel that are not the backend.
_NON_BACKEND_PREFIXES = ("backbone.", "aam_softmax.", "span_mask_kernel")

# How an authors' tensor is reshaped into ours, and back:
# name -> (theirs to ours, ours to theirs).
_RESHAPES = {
    # [O, I, 1, 1] 1x1 Conv2d on a vector <-> [O, I] Linear
    "conv1x1": (
        lambda t: t.reshape(t.shape[0], -1),
        lambda t: t[:, :, None, None],
    ),
    # [L, C, 1] gate weights <-> [L, C]
    "column": (lambda t: t.reshape(t.shape[0], -1), lambda t: t[:, :, None]),
    # [L, 1, 1] gate biases <-> [L]
    "vector": (lambda t: t.reshape(-1), lambda t: t[:, None, None]),
    # [H, 1, M] per-head MLP biases <-> [H, M]
    "head_row": (lambda t: t.reshape(t.shape[0], -1), lambda t: t[:, None]),
}


def _block_entries(index, num_dilations):
    """Maps the parameters of D3 block ``index`` (layer scores aside)."""
    vad = f"d3net.vadnet.{index}"
    dense = f"d3net.densenet.{index}.m.0"
    attention = f"d3net.densenet.{index}.m.1"
    ours = f"blocks.{index}"
    entries = {
        f"{vad}.weight": (f"{ours}.layer_gate.gate_weight", "column"),
        f"{vad}.bias": (f"{ours}.layer_gate.gate_bias", "vector"),
    }
    entries.update(
        layer_entries(f"{dense}.projection", f"{ours}.dense_block.projection")
    )
    for step in range(num_dilations):
        for source in range(step + 1):
            theirs = f"{dense}.dense.{step}.mdconv.{source}"
            unit = f"{ours}.dense_block.steps.{step}.{source}"
            entries.update(norm_entries(f"{theirs}.0", f"{unit}.norm"))
            entries.update(layer_entries(f"{theirs}.2", f"{unit}.conv"))
    for pool, branch in (("avg_se", "avg_branch"), ("max_se", "max_branch")):
        theirs = f"{attention}.{pool}"
        mine = f"{ours}.channel_attention.{branch}"
        entries.update(
            layer_entries(f"{theirs}.1", f"{mine}.squeeze", "conv1x1")
        )
        entries.update(norm_entries(f"{theirs}.3", f"{mine}.norm"))
        entries.update(
            layer_entries(f"{theirs}.4", f"{mine}.excite", "conv1x1")
        )
    return entries


def _pooling_entries():
    """Maps the parameters of ``l_pool`` and ``t_pool``."""
    entries = norm_entries("l_pool.in_projection.0", "layer_pooling.input_norm")
    entries.update(
        layer_entries(
            "l_pool.in_projection.1",
            "layer_pooling.input_projection",
            bias=False,
        )
    )
    entries.update(
        {
            "l_pool.W1": ("layer_pooling.hidden_weight", None),
            "l_pool.b1": ("layer_pooling.hidden_bias", "head_row"),
            "l_pool.W2": ("layer_pooling.score_weight", None),
            "l_pool.b2": ("layer_pooling.score_bias", "head_row"),
        }
    )
    entries.update(
        layer_entries(
            "l_pool.out_projection.0",
            "layer_pooling.output_projection",
            bias=False,
        )
    )
    entries.update(
        norm_entries("l_pool.out_projection.1", "layer_pooling.output_norm")
    )
    for theirs, ours in (("0", "attention_hidden"), ("3", "attention_output")):
        entries.update(
            layer_entries(f"t_pool.attention.{theirs}", f"time_pooling.{ours}")
        )
    entries.update(
        norm_entries("t_pool.attention.2", "time_pooling.attention_norm")
    )
    entries.update(norm_entries("t_pool.attn_norm", "stats_norm"))
    entries.update(layer_entries("t_pool.out_proj", "embedding"))
    entries.update(norm_entries("t_pool.out_norm", "embedding_norm"))
    return entries


def _key_map(num_blocks, num_dilations):
    """Maps every authors' backend key but the layer scores to ours.

    Returns
    -------
    dict
        ``their key -> (our key, reshape name or None)``.
    """
    entries = layer_entries("d3net.projection.0", "input_projection", "conv1x1")
    entries.update(norm_entries("d3net.projection.1", "input_norm"))
    for index in range(num_blocks):
        entries.update(_block_entries(index, num_dilations))
    entries.update(_pooling_entries())
    return entries


def _score_key(block, layer):
    """The authors' key of one layer-score vector."""
    return f"d3net.vadnet.{block}.superb.{layer}.score_vector"


def _count_indices(keys, pattern):
    """One more than the largest integer ``pattern`` captures (0 if none)."""
    found = [int(m.group(1)) for key in keys if (m := re.match(pattern, key))]
    return max(found) + 1 if found else 0


def convert_authors_state_dict(state_dict, ignore_non_backend=True):
    """Converts the authors' backend weights to :class:`UniPool` keys.

    The result loads into a :class:`~unipool_lobes.models.unipool.UniPool` built
    with the same sizes (:func:`authors_hparams_from_state_dict` reads them)
    with ``strict=True``, and gives the authors' embeddings for unpadded
    input (theirs run with an all-valid mask: without a mask their
    global-context std is the unbiased one, ours never is).

    Keys may carry an ``encoder.`` prefix (a whole ``SVmodel`` state dict)
    and a ``module.`` prefix (DDP). The non-backend parts of ``SVmodel``
    (``backbone.*``, ``aam_softmax.*``, ``span_mask_kernel``) are dropped,
    or rejected if ``ignore_non_backend`` is False. A missing
    ``num_batches_tracked`` is filled with 0, as PyTorch does for old
    checkpoints.

    Arguments
    ---------
    state_dict : dict
        The authors' state dict (backend, encoder or whole model).
    ignore_non_backend : bool
        Drop (True) or reject (False) the non-backend parts.

    Returns
    -------
    dict
        Our state dict.

    Raises
    ------
    KeyError
        If backend keys are missing or unknown (all of them are listed).
    ValueError
        If non-backend keys are present and ``ignore_non_backend`` is
        False, or the layer score vectors do not form a square matrix.

    Example
    -------
    >>> from unipool_lobes.models.unipool.model import UniPool
    >>> model = UniPool(input_size=16, num_layers=2, conv_channels=4)
    >>> theirs = convert_to_authors_state_dict(model.state_dict())
    >>> theirs["d3net.projection.0.weight"].shape
    torch.Size([16, 16, 1, 1])
    >>> ours = convert_authors_state_dict(theirs)
    >>> model.load_state_dict(ours, strict=True)
    <All keys matched successfully>
    """
    backend = backend_keys(
        state_dict, ignore_non_backend, _NON_BACKEND_PREFIXES, ("encoder.",)
    )
    keys = list(backend)
    num_blocks = _count_indices(keys, r"d3net\.vadnet\.(\d+)\.")
    num_layers = _count_indices(
        keys, r"d3net\.vadnet\.0\.superb\.(\d+)\.score_vector$"
    )
    num_dilations = _count_indices(
        keys, r"d3net\.densenet\.0\.m\.0\.dense\.(\d+)\."
    )
    key_map = _key_map(num_blocks, num_dilations)
    expected = set(key_map)
    expected.update(
        _score_key(block, layer)
        for block in range(num_blocks)
        for layer in range(num_layers)
    )
    optional = {key for key in key_map if key.endswith("num_batches_tracked")}
    check_keys(
        backend,
        expected,
        "an authors' UniPool backend",
        optional,
        absent=[] if num_blocks else ["d3net.vadnet.0.*"],
    )
    converted = {}
    for theirs, (ours, reshape) in key_map.items():
        if theirs not in backend:  # an optional num_batches_tracked
            converted[ours] = torch.tensor(0, dtype=torch.long)
            continue
        value = backend[theirs]
        converted[ours] = _RESHAPES[reshape][0](value) if reshape else value
    for block in range(num_blocks):
        rows = [backend[_score_key(block, i)] for i in range(num_layers)]
        if any(tuple(row.shape) != (num_layers,) for row in rows):
            raise ValueError(
                f"{_score_key(block, '*')} must each hold {num_layers} "
                f"values, got shapes {[tuple(r.shape) for r in rows]}"
            )
        converted[f"blocks.{block}.layer_gate.layer_scores"] = torch.stack(rows)
    return converted


def convert_to_authors_state_dict(state_dict, prefix=""):
    """Converts :class:`UniPool` weights to the authors' backend keys.

    The inverse of :func:`convert_authors_state_dict`: the result loads
    into the authors' ``SVmodel.encoder`` (or, with ``prefix="encoder."``,
    is the backend part of an ``SVmodel`` state dict).

    Arguments
    ---------
    state_dict : dict
        Our state dict (``UniPool.state_dict()``).
    prefix : str
        Prepended to every key.

    Returns
    -------
    dict
        The authors' state dict.

    Raises
    ------
    KeyError
        If keys are missing or unknown (all of them are listed).

    Example
    -------
    >>> from unipool_lobes.models.unipool.model import UniPool
    >>> model = UniPool(input_size=16, num_layers=2, conv_channels=4)
    >>> theirs = convert_to_authors_state_dict(model.state_dict())
    >>> theirs["d3net.vadnet.0.superb.1.score_vector"]
    tensor([0., 1.])
    """
    keys = list(state_dict)
    num_blocks = _count_indices(keys, r"blocks\.(\d+)\.")
    num_dilations = _count_indices(
        keys, r"blocks\.0\.dense_block\.steps\.(\d+)\."
    )
    key_map = _key_map(num_blocks, num_dilations)
    scores = {f"blocks.{i}.layer_gate.layer_scores" for i in range(num_blocks)}
    expected = {ours for ours, _ in key_map.values()} | scores
    check_keys(
        state_dict,
        expected,
        "a UniPool",
        absent=[] if num_blocks else ["blocks.0.*"],
    )
    converted = {}
    for theirs, (ours, reshape) in key_map.items():
        value = state_dict[ours]
        converted[prefix + theirs] = (
            _RESHAPES[reshape][1](value) if reshape else value
        )
    for block in range(num_blocks):
        matrix = state_dict[f"blocks.{block}.layer_gate.layer_scores"]
        for layer, row in enumerate(matrix):
            converted[prefix + _score_key(block, layer)] = row.clone()
    return converted


def authors_hparams_from_state_dict(state_dict):
    """Reads the :class:`UniPool` sizes of an authors' checkpoint.

    The dilations cannot be read from weights; the authors always use
    ``(1, 2, 4)``, which :class:`UniPool` defaults to.

    Arguments
    ---------
    state_dict : dict
        The authors' state dict (backend, encoder or whole model).

    Returns
    -------
    dict
        ``input_size``, ``num_layers``, ``conv_channels``, ``num_blocks``,
        ``attention_heads`` and ``lin_neurons``: keyword arguments of
        :class:`UniPool`.

    Raises
    ------
    KeyError
        If a key needed to read a size is absent.

    Example
    -------
    >>> from unipool_lobes.models.unipool.model import UniPool
    >>> model = UniPool(input_size=16, num_layers=2, conv_channels=4)
    >>> theirs = convert_to_authors_state_dict(model.state_dict())
    >>> hparams = authors_hparams_from_state_dict(theirs)
    >>> hparams["input_size"], hparams["num_layers"], hparams["conv_channels"]
    (16, 2, 4)
    """
    backend = backend_keys(
        state_dict, True, _NON_BACKEND_PREFIXES, ("encoder.",)
    )
    needed = {
        "input_size": ("d3net.projection.0.weight", 1),
        "num_layers": ("d3net.vadnet.0.weight", 0),
        "conv_channels": ("d3net.densenet.0.m.0.projection.weight", 0),
        "attention_heads": ("l_pool.W1", 0),
        "lin_neurons": ("t_pool.out_proj.weight", 0),
    }
    absent = [key for key, _ in needed.values() if key not in backend]
    if absent:
        raise KeyError(f"authors' state dict lacks {absent}")
    hparams = {
        name: int(backend[key].shape[axis])
        for name, (key, axis) in needed.items()
    }
    hparams["num_blocks"] = _count_indices(
        list(backend), r"d3net\.vadnet\.(\d+)\."
    )
    return hparams
