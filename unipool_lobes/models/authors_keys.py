"""Strict renaming of the authors' state dicts: the shared key rules.

The converters of the UniPool authors' checkpoints
(:mod:`unipool_lobes.models.unipool.authors`) and of the LAP authors'
(:mod:`unipool_lobes.models.lap_authors`) map keys one to one along a key
map ``{theirs: (ours, reshape name)}``. What they share is here: the
entries of a batch normalisation and of a layer, the stripping of the
authors' container prefixes, and the strict check that lists every
missing and unknown key at once.

Authors
 * unipool-sv developers 2026
"""

__all__ = ["backend_keys", "check_keys", "layer_entries", "norm_entries"]

_BATCH_NORM_ENTRIES = (
    "weight",
    "bias",
    "running_mean",
    "running_var",
    "num_batches_tracked",
)


def norm_entries(theirs, ours):
    """Maps the entries of one batch normalisation.

    Arguments
    ---------
    theirs : str
        The module's name in the authors' model.
    ours : str
        Its name in ours.

    Returns
    -------
    dict
        ``{their key: (our key, None)}`` for the five batch-norm entries.

    Example
    -------
    >>> norm_entries("bn", "norm")["bn.running_var"]
    ('norm.running_var', None)
    """
    return {
        f"{theirs}.{entry}": (f"{ours}.{entry}", None)
        for entry in _BATCH_NORM_ENTRIES
    }


def layer_entries(theirs, ours, reshape=None, bias=True):
    """Maps the weight (and bias) of one convolution or linear layer.

    Arguments
    ---------
    theirs : str
        The layer's name in the authors' model.
    ours : str
        Its name in ours.
    reshape : str, optional
        The name of the weight's reshape (the converter's table).
    bias : bool
        Whether the layer has a bias.

    Returns
    -------
    dict
        ``{their key: (our key, reshape)}``.

    Example
    -------
    >>> layer_entries("conv", "linear", "conv1d")["conv.weight"]
    ('linear.weight', 'conv1d')
    >>> list(layer_entries("fc", "fc", bias=False))
    ['fc.weight']
    """
    entries = {f"{theirs}.weight": (f"{ours}.weight", reshape)}
    if bias:
        entries[f"{theirs}.bias"] = (f"{ours}.bias", None)
    return entries


def backend_keys(state_dict, ignore_non_backend, non_backend, container):
    """The backend part of an authors' ``SVmodel`` state dict.

    ``module.`` (DDP) and the backend's container prefix are stripped;
    keys of the other parts are dropped, or refused.

    Arguments
    ---------
    state_dict : dict
        The authors' state dict (whole ``SVmodel`` or backend only).
    ignore_non_backend : bool
        Drop the keys of the other parts (True) or refuse them.
    non_backend : tuple of str
        The prefixes of the other parts (front-end, loss head...).
    container : tuple of str
        The prefixes stripped from backend keys, in order.

    Returns
    -------
    dict
        Backend keys without the prefixes.

    Raises
    ------
    ValueError
        Listing the other parts' keys, when ``ignore_non_backend`` is
        False.

    Example
    -------
    >>> theirs = {"module.encoder.w": 1, "module.backbone.x": 2}
    >>> backend_keys(theirs, True, ("backbone.",), ("encoder.",))
    {'w': 1}
    """
    backend, rejected = {}, []
    for key, value in state_dict.items():
        name = key.removeprefix("module.")
        if name.startswith(non_backend):
            rejected.append(key)
            continue
        for prefix in container:
            name = name.removeprefix(prefix)
        backend[name] = value
    if rejected and not ignore_non_backend:
        raise ValueError(
            "state dict holds parts of the authors' SVmodel that are not the "
            f"backend (pass ignore_non_backend=True to drop them): {rejected}"
        )
    return backend


def check_keys(present, expected, what, optional=(), absent=()):
    """Refuses a state dict whose keys are not exactly the expected ones.

    Arguments
    ---------
    present : iterable of str
        The state dict's keys.
    expected : set of str
        The keys a conversion needs.
    what : str
        What the state dict should be, for the message (``"a UniPool"``).
    optional : iterable of str
        Expected keys that may be missing (PyTorch fills a missing
        ``num_batches_tracked`` of an old checkpoint).
    absent : iterable of str
        Patterns reported missing first (a whole part that is not there).

    Raises
    ------
    KeyError
        Listing every missing and unknown key.

    Example
    -------
    >>> check_keys({"a"}, {"a"}, "a toy")
    >>> check_keys({"a", "c"}, {"a", "b"}, "a toy")
    Traceback (most recent call last):
      ...
    KeyError: "not a toy state dict: missing keys ['b'], unknown keys ['c']"
    """
    present = set(present)
    missing = list(absent) + sorted(set(expected) - present - set(optional))
    unknown = sorted(present - set(expected))
    if missing or unknown:
        raise KeyError(
            f"not {what} state dict: missing keys {missing}, unknown keys "
            f"{unknown}"
        )
