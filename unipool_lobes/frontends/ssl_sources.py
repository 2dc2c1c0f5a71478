"""Where an SSL model comes from, and what its checkpoint says.

:func:`resolve_source` tells a local folder from a Hugging Face hub id,
:func:`read_feature_extractor` reads a checkpoint's waveform normalisation
and sample rate, :func:`portable_config` turns a checkpoint's config into
the plain mapping a pretrained folder's yaml inlines (no path in it),
:func:`load_ssl_model` builds the HF model from a source or from such a
mapping, and a private check refuses a model that lacks the wav2vec2-style
parts :class:`unipool_lobes.frontends.ssl.MultiLayerSSL` drives.

Authors
 * unipool-sv developers 2026
"""

import os
import warnings

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

__all__ = [
    "config_from_mapping",
    "load_ssl_model",
    "portable_config",
    "read_feature_extractor",
    "resolve_source",
]

# Config entries that describe where a checkpoint was read, not the model.
_LOCATION_KEYS = ("_name_or_path", "_commit_hash", "name_or_path")


def resolve_source(source):
    """Returns ``source`` as a folder if local, or as given if a hub id.

    Arguments
    ---------
    source : str or os.PathLike
        A hub id (``org/name``) or a local folder.

    Returns
    -------
    str
        The expanded folder path, or the hub id unchanged.

    Raises
    ------
    FileNotFoundError
        When ``source`` looks like a local path (starts with ``/``, ``./``,
        ``../`` or ``~``, holds a backslash, has more than one ``/``, or its
        first component is an existing local folder) and does not exist.

    Example
    -------
    >>> resolve_source("facebook/wav2vec2-base")
    'facebook/wav2vec2-base'
    >>> resolve_source("./no/such/model")
    Traceback (most recent call last):
    ...
    FileNotFoundError: SSL model folder not found: ./no/such/model
    """
    source = os.fspath(source)
    expanded = os.path.expanduser(source)
    if os.path.exists(expanded):
        return expanded
    looks_local = (
        source.startswith(("/", "./", "../", "~"))
        or "\\" in source
        or source.count("/") > 1
        or (os.sep != "/" and os.sep in source)
        # "models/w2v" when a local "models" folder exists
        or ("/" in source and os.path.isdir(source.split("/")[0]))
    )
    if looks_local:
        raise FileNotFoundError(f"SSL model folder not found: {source}")
    return source


def read_feature_extractor(source, save_path=None):
    """Reads ``do_normalize`` and the sample rate of a checkpoint.

    Arguments
    ---------
    source : str
        A hub id or an existing local folder.
    save_path : str, optional
        The HF cache folder.

    Returns
    -------
    do_normalize : bool
        From the feature-extractor config; False when there is none.
    sample_rate : int
        Its ``sampling_rate``; 16000 when there is none.

    Example
    -------
    >>> from unipool_lobes.frontends.local_models import write_local_model
    >>> out = str(getfixture("tmp_path"))
    >>> folder = write_local_model(out, do_normalize=True)
    >>> read_feature_extractor(folder)
    (True, 16000)
    """
    if os.path.isdir(source) and not os.path.isfile(
        os.path.join(source, "preprocessor_config.json")
    ):
        return False, 16000
    try:
        extractor = AutoFeatureExtractor.from_pretrained(
            source, cache_dir=save_path
        )
    except OSError as error:
        if os.path.isdir(source):
            raise
        warnings.warn(
            f"no feature-extractor config for {source} ({error}); "
            "using do_normalize=False and 16 kHz",
            stacklevel=2,
        )
        return False, 16000
    return (
        bool(getattr(extractor, "do_normalize", False)),
        int(getattr(extractor, "sampling_rate", 16000)),
    )


def _check_architecture(model, source):
    """Raises TypeError unless the model has the wav2vec2-style parts."""
    parts = ("feature_extractor", "feature_projection", "encoder")
    missing = [part for part in parts if not hasattr(model, part)]
    if missing or not hasattr(model.encoder, "layers"):
        raise TypeError(
            f"{source} loads as {type(model).__name__}, which lacks "
            f"{missing or ['encoder.layers']}: MultiLayerSSL needs a "
            "wav2vec2-style speech model (wav2vec2, HuBERT, WavLM)"
        )


def portable_config(
    source, save_path=None, config_overrides=None, **from_pretrained_kwargs
):
    """The HF config of ``source`` after overrides, as a plain mapping.

    What a pretrained folder inlines instead of the source's path: the
    model is then built with :func:`config_from_mapping` (random weights,
    filled from the folder's ``front_end.ckpt``). The entries that record
    where the checkpoint was read (``_name_or_path``...) are dropped.

    Arguments
    ---------
    source : str
        A hub id or a local folder.
    save_path : str, optional
        The HF cache folder.
    config_overrides : dict, optional
        Values set on the config (an unknown key is an error).
    **from_pretrained_kwargs
        Passed to ``AutoConfig.from_pretrained`` (e.g. ``revision``).

    Returns
    -------
    dict
        ``config.to_dict()`` with ``model_type``, of plain values only.

    Raises
    ------
    KeyError
        For an override the config does not have.

    Example
    -------
    >>> from unipool_lobes.frontends.local_models import write_local_model
    >>> folder = write_local_model(str(getfixture("tmp_path")), "hubert")
    >>> config = portable_config(folder, config_overrides={"layerdrop": 0.5})
    >>> config["model_type"], config["layerdrop"]
    ('hubert', 0.5)
    >>> folder in str(config)
    False
    """
    source = resolve_source(source)
    config = AutoConfig.from_pretrained(
        source, cache_dir=save_path, **from_pretrained_kwargs
    )
    _apply_overrides(config, config_overrides, source)
    values = config.to_dict()
    for key in _LOCATION_KEYS:
        values.pop(key, None)
    values["model_type"] = config.model_type
    return values


def config_from_mapping(mapping):
    """Builds an HF config from a mapping of :func:`portable_config`.

    Arguments
    ---------
    mapping : dict
        The config's values, ``model_type`` among them.

    Returns
    -------
    transformers.PretrainedConfig
        The config of that model type.

    Raises
    ------
    ValueError
        If the mapping names no ``model_type``.

    Example
    -------
    >>> config = config_from_mapping({"model_type": "wavlm", "hidden_size": 8})
    >>> type(config).__name__, config.hidden_size
    ('WavLMConfig', 8)
    """
    values = dict(mapping)
    model_type = values.pop("model_type", None)
    if not model_type:
        raise ValueError(
            "the SSL model's config has no model_type (e.g. 'wav2vec2')"
        )
    return AutoConfig.for_model(model_type, **values)


def load_ssl_model(
    source=None,
    config=None,
    save_path=None,
    config_overrides=None,
    apply_spec_augment=False,
    **from_pretrained_kwargs,
):
    """Builds the HF speech model of a source or of an inline config.

    With ``source``, the pretrained weights are read
    (``AutoModel.from_pretrained``); with ``config`` (a mapping of
    :func:`portable_config`) the model is built with random weights
    (``AutoModel.from_config``), to be filled from a checkpoint. In both
    cases the config's ``layerdrop`` is 0 and SpecAugment is on only with
    ``apply_spec_augment``.

    Arguments
    ---------
    source : str, optional
        A hub id or a local folder.
    config : dict, optional
        An inline config, instead of ``source``.
    save_path : str, optional
        The HF cache folder for hub downloads.
    config_overrides : dict, optional
        Values set on the config before the model is built.
    apply_spec_augment : bool
        Keep the model's SpecAugment masking.
    **from_pretrained_kwargs
        Passed to ``from_pretrained`` (unused with ``config``).

    Returns
    -------
    model : transformers.PreTrainedModel
        The model.
    config : transformers.PretrainedConfig
        Its config.

    Raises
    ------
    ValueError
        If neither or both of ``source`` and ``config`` are given.
    KeyError
        For an override the config does not have.
    TypeError
        When the model is not a wav2vec2-style speech model.

    Example
    -------
    >>> from unipool_lobes.frontends.local_models import write_local_model
    >>> folder = write_local_model(str(getfixture("tmp_path")))
    >>> model, config = load_ssl_model(config=portable_config(folder))
    >>> type(model).__name__, config.layerdrop
    ('Wav2Vec2Model', 0.0)
    """
    if (source is None) == (config is None):
        raise ValueError(
            "MultiLayerSSL needs either a source (hub id or folder) or an "
            "inline config, not both or neither"
        )
    if config is not None:
        where = "the inline config"
        config = config_from_mapping(config)
    else:
        where = source = resolve_source(source)
        config = AutoConfig.from_pretrained(
            source, cache_dir=save_path, **from_pretrained_kwargs
        )
    _apply_overrides(config, config_overrides, where)
    config.layerdrop = 0.0
    config.apply_spec_augment = bool(apply_spec_augment)
    if source is None:
        model = AutoModel.from_config(config)
    else:
        model = AutoModel.from_pretrained(
            source, config=config, cache_dir=save_path, **from_pretrained_kwargs
        )
    _check_architecture(model, where)
    return model, config


def _apply_overrides(config, overrides, where):
    """Sets ``overrides`` on ``config``; an unknown key is a KeyError."""
    for key, value in (overrides or {}).items():
        if not hasattr(config, key):
            raise KeyError(
                f"config_overrides: {type(config).__name__} of {where} "
                f"has no key {key!r}"
            )
        setattr(config, key, value)
