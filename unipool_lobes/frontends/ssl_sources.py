"""Where an SSL model comes from, and what its checkpoint says.

:func:`resolve_source` tells a local folder from a Hugging Face hub id,
:func:`read_feature_extractor` reads a checkpoint's waveform normalisation
and sample rate, and a private check refuses a model that lacks the
wav2vec2-style parts :class:`unipool_lobes.frontends.ssl.MultiLayerSSL`
drives.

Authors
 * unipool-sv developers 2026
"""

import os
import warnings

from transformers import AutoFeatureExtractor

__all__ = ["read_feature_extractor", "resolve_source"]


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
