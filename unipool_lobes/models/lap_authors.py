"""Converts LAP and MHFA weights between the LAP authors' code and ours.

The authors (GitHub sadPororo/LAP, ``src/model.py``) keep the backend in
``SVmodel.backend``, a ``ModuleDict``: ``layer_aggregation`` (their ``LAP``)
then ``speaker_network`` (their ``ASTP``), or ``speaker_network`` alone
for their ``MHFA``, which holds its two layer aggregators (``SUPERB`` or
``LAP``) itself. Ours, :class:`unipool_lobes.models.lap.LAP` and
:class:`unipool_lobes.models.mhfa.MHFA`, hold the same parameters under other
names and, where the authors use 1x1 convolutions per frame, as linear
layers; the conversion renames and reshapes, nothing else.

Authors
 * unipool-sv developers 2026
"""

from unipool_lobes.models.authors_keys import (
    backend_keys,
    check_keys,
    layer_entries,
    norm_entries,
)

__all__ = [
    "lap_state_dict_from_authors",
    "lap_state_dict_to_authors",
    "mhfa_state_dict_from_authors",
    "mhfa_state_dict_to_authors",
]

# Parts of the authors' SVmodel that are not the backend.
_NON_BACKEND_PREFIXES = ("frontend.", "aam_softmax.")

# How an authors' tensor is reshaped into ours, and back:
# name -> (theirs to ours, ours to theirs).
_RESHAPES = {
    # [O, I, 1, 1] 1x1 Conv2d <-> [O, I] Linear
    "conv2d": (lambda t: t.flatten(start_dim=1), lambda t: t[:, :, None, None]),
    # [O, I, 1] 1x1 Conv1d <-> [O, I] Linear
    "conv1d": (lambda t: t.flatten(start_dim=1), lambda t: t[:, :, None]),
    # [H, 1, M] per-head MLP biases <-> [H, M]
    "head_row": (lambda t: t.flatten(start_dim=1), lambda t: t[:, None]),
}


def _layer_pooling_entries(theirs, ours, num_heads):
    """Maps the parameters of one authors' ``LAP`` (layer pooling)."""
    entries = norm_entries(f"{theirs}.in_norm", f"{ours}.input_norm")
    if num_heads > 1:  # one head: no input projection, on both sides
        entries.update(
            layer_entries(
                f"{theirs}.in_weight", f"{ours}.input_projection", "conv2d"
            )
        )
    entries.update(
        {
            f"{theirs}.sq_weight": (f"{ours}.squeeze_weight", None),
            f"{theirs}.sq_bias": (f"{ours}.squeeze_bias", "head_row"),
            f"{theirs}.ex_weight": (f"{ours}.excite_weight", None),
            f"{theirs}.ex_bias": (f"{ours}.excite_bias", "head_row"),
        }
    )
    entries.update(
        layer_entries(
            f"{theirs}.out_weight", f"{ours}.output_projection", "conv1d"
        )
    )
    entries.update(norm_entries(f"{theirs}.out_norm", f"{ours}.output_norm"))
    return entries


def _lap_key_map(num_heads):
    """Authors' LAP + ASTP backend keys -> (our LAP keys, reshape)."""
    entries = _layer_pooling_entries(
        "layer_aggregation", "layer_pooling", num_heads
    )
    attention = "speaker_network.t_pool.attention"
    entries.update(
        layer_entries(f"{attention}.0", "time_pooling.attention_hidden")
    )
    entries.update(
        norm_entries(f"{attention}.2", "time_pooling.attention_norm")
    )
    entries.update(
        layer_entries(f"{attention}.3", "time_pooling.attention_output")
    )
    entries.update(norm_entries("speaker_network.t_pool.norm", "pooled_norm"))
    entries.update(layer_entries("speaker_network.emb_weight", "embedding"))
    entries.update(norm_entries("speaker_network.emb_norm", "embedding_norm"))
    return entries


def _mhfa_key_map(lap_heads):
    """Authors' MHFA keys -> (our MHFA keys, reshape).

    ``lap_heads`` is None for ``SUPERB`` aggregators, else the heads of
    their ``LAP`` aggregators.
    """
    entries = {}
    for theirs, ours in (("l_pool_k", "key"), ("l_pool_v", "value")):
        if lap_heads is None:
            entries[f"{theirs}.layer_weights"] = (f"{ours}_layer_weights", None)
        else:
            entries.update(
                _layer_pooling_entries(theirs, f"{ours}_aggregation", lap_heads)
            )
    for theirs, ours in (
        ("cmp_linear_k", "key_compression"),
        ("cmp_linear_v", "value_compression"),
        ("att_head", "attention_heads"),
        ("pooling_fc", "projection"),
    ):
        entries.update(layer_entries(theirs, ours))
    return entries


def _heads(state_dict, key):
    """The number of heads: the first size of ``key`` (a ``sq_weight``).

    Without ``key`` the strict conversion will report it missing; 2 (any
    count above one) makes it report the input projection too.
    """
    if key not in state_dict:
        return 2
    return int(state_dict[key].shape[0])


def _convert(state_dict, key_map, what, direction):
    """Renames and reshapes ``state_dict`` along ``key_map``, strictly.

    ``direction`` is 0 (theirs to ours: ``key_map`` keys are the source)
    or 1 (ours to theirs).
    """
    if direction == 0:
        pairs = [(t, o, r) for t, (o, r) in key_map.items()]
    else:
        pairs = [(o, t, r) for t, (o, r) in key_map.items()]
    expected = {source for source, _, _ in pairs}
    # PyTorch fills a missing num_batches_tracked of an old checkpoint.
    optional = {key for key in expected if key.endswith("num_batches_tracked")}
    check_keys(state_dict, expected, what, optional)
    converted = {}
    for source, target, reshape in pairs:
        if source not in state_dict:
            continue
        value = state_dict[source]
        converted[target] = (
            _RESHAPES[reshape][direction](value) if reshape else value
        )
    return converted


def lap_state_dict_from_authors(state_dict, ignore_non_backend=True):
    """Converts the authors' LAP + ASTP backend weights to :class:`LAP` keys.

    The input is the authors' ``SVmodel.backend`` state dict (keys
    ``layer_aggregation.*`` and ``speaker_network.*``), or a whole
    ``SVmodel`` one (``backend.`` prefix; ``frontend.*`` and
    ``aam_softmax.*`` dropped, or rejected if ``ignore_non_backend`` is
    False), optionally under DDP's ``module.``. The result loads into a
    :class:`~unipool_lobes.models.lap.LAP` of the same sizes with
    ``strict=True``; with ``context_std="unbiased"`` it then gives the
    authors' embeddings (``tests/test_lap_parity.py``).

    Arguments
    ---------
    state_dict : dict
        The authors' state dict.
    ignore_non_backend : bool
        Drop (True) or reject (False) the non-backend parts.

    Returns
    -------
    dict
        Our state dict.

    Raises
    ------
    KeyError
        If keys are missing or unknown (all of them are listed).
    ValueError
        If non-backend keys are present and ``ignore_non_backend`` is
        False.

    Example
    -------
    >>> from unipool_lobes.models.lap import LAP
    >>> lap = LAP(
    ...     input_size=16,
    ...     num_layers=4,
    ...     channels=8,
    ...     num_heads=2,
    ...     embedding_size=6,
    ... )
    >>> theirs = lap_state_dict_to_authors(lap.state_dict())
    >>> theirs["layer_aggregation.in_weight.weight"].shape
    torch.Size([16, 16, 1, 1])
    >>> lap.load_state_dict(lap_state_dict_from_authors(theirs))
    <All keys matched successfully>
    >>> lap_state_dict_from_authors({**theirs, "layer_aggregation.x": 0})
    Traceback (most recent call last):
      ...
    KeyError: "not an ... unknown keys ['layer_aggregation.x']"
    """
    what = "an authors' LAP + ASTP"
    backend = backend_keys(
        state_dict, ignore_non_backend, _NON_BACKEND_PREFIXES, ("backend.",)
    )
    heads = _heads(backend, "layer_aggregation.sq_weight")
    return _convert(backend, _lap_key_map(heads), what, direction=0)


def lap_state_dict_to_authors(state_dict, prefix=""):
    """Converts :class:`LAP` weights to the authors' backend keys.

    The inverse of :func:`lap_state_dict_from_authors`: the result loads
    into the authors' ``SVmodel.backend`` (or, with ``prefix="backend."``,
    is the backend part of an ``SVmodel`` state dict).

    Arguments
    ---------
    state_dict : dict
        Our state dict (``LAP.state_dict()``).
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
    >>> from unipool_lobes.models.lap import LAP
    >>> lap = LAP(
    ...     input_size=16,
    ...     num_layers=4,
    ...     channels=8,
    ...     num_heads=2,
    ...     embedding_size=6,
    ... )
    >>> theirs = lap_state_dict_to_authors(lap.state_dict(), "backend.")
    >>> theirs["backend.layer_aggregation.sq_bias"].shape
    torch.Size([2, 1, 2])
    """
    what = "a LAP"
    heads = _heads(state_dict, "layer_pooling.squeeze_weight")
    converted = _convert(state_dict, _lap_key_map(heads), what, direction=1)
    return {prefix + key: value for key, value in converted.items()}


def _mhfa_lap_heads(state_dict, lap_key):
    """None for weighted-sum aggregators, else the LAP aggregators' heads.

    ``lap_key`` is a key only a LAP key aggregator has.
    """
    if lap_key not in state_dict:
        return None
    return _heads(state_dict, lap_key)


def mhfa_state_dict_from_authors(state_dict, ignore_non_backend=True):
    """Converts the authors' MHFA weights to :class:`MHFA` keys.

    The input is the state dict of the authors' ``MHFA`` module, of
    ``SVmodel.backend`` (``speaker_network.`` prefix) or of a whole
    ``SVmodel`` (``backend.speaker_network.``; ``frontend.*`` and
    ``aam_softmax.*`` dropped, or rejected if ``ignore_non_backend`` is
    False), optionally under DDP's ``module.``. Their ``SUPERB``
    aggregators map to ``layer_aggregation="weighted_sum"`` (the layer
    logits are kept: the softmax is the same), their ``LAP`` ones to
    ``layer_aggregation="lap"``.

    Arguments
    ---------
    state_dict : dict
        The authors' state dict.
    ignore_non_backend : bool
        Drop (True) or reject (False) the non-backend parts.

    Returns
    -------
    dict
        Our state dict.

    Raises
    ------
    KeyError
        If keys are missing or unknown (all of them are listed).
    ValueError
        If non-backend keys are present and ``ignore_non_backend`` is
        False.

    Example
    -------
    >>> from unipool_lobes.models.mhfa import MHFA
    >>> mhfa = MHFA(
    ...     input_size=16,
    ...     num_layers=4,
    ...     num_heads=2,
    ...     compression_dim=4,
    ...     embedding_size=6,
    ...     layer_aggregation="lap",
    ...     lap_channels=8,
    ...     lap_num_heads=2,
    ... )
    >>> theirs = mhfa_state_dict_to_authors(mhfa.state_dict())
    >>> theirs["l_pool_v.ex_weight"].shape
    torch.Size([2, 2, 4])
    >>> mhfa.load_state_dict(mhfa_state_dict_from_authors(theirs))
    <All keys matched successfully>
    """
    what = "an authors' MHFA"
    backend = backend_keys(
        state_dict,
        ignore_non_backend,
        _NON_BACKEND_PREFIXES,
        ("backend.", "speaker_network."),
    )
    lap_heads = _mhfa_lap_heads(backend, "l_pool_k.sq_weight")
    return _convert(backend, _mhfa_key_map(lap_heads), what, direction=0)


def mhfa_state_dict_to_authors(state_dict, prefix=""):
    """Converts :class:`MHFA` weights to the authors' ``MHFA`` keys.

    The inverse of :func:`mhfa_state_dict_from_authors`; with
    ``prefix="backend.speaker_network."`` the result is the backend part of
    an authors' ``SVmodel`` state dict.

    Arguments
    ---------
    state_dict : dict
        Our state dict (``MHFA.state_dict()``).
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
    >>> from unipool_lobes.models.mhfa import MHFA
    >>> mhfa = MHFA(
    ...     input_size=16,
    ...     num_layers=4,
    ...     num_heads=2,
    ...     compression_dim=4,
    ...     embedding_size=6,
    ... )
    >>> sorted(mhfa_state_dict_to_authors(mhfa.state_dict()))[-2:]
    ['pooling_fc.bias', 'pooling_fc.weight']
    """
    what = "an MHFA"
    lap_heads = _mhfa_lap_heads(state_dict, "key_aggregation.squeeze_weight")
    converted = _convert(
        state_dict, _mhfa_key_map(lap_heads), what, direction=1
    )
    return {prefix + key: value for key, value in converted.items()}
