"""Writes small local Hugging Face speech-model folders for offline use.

A folder written here holds ``config.json``, the randomly initialised weights
and ``preprocessor_config.json``, all saved with ``save_pretrained``, so that
``AutoConfig``, ``AutoModel`` and ``AutoFeatureExtractor.from_pretrained``
load it with no network. Three families (wav2vec2, HuBERT, WavLM) come in two
sizes: ``base`` has the architecture of facebook/wav2vec2-base,
facebook/hubert-base-ls960 and microsoft/wavlm-base (12 layers, 768 hidden
units, 3072 FFN units, 12 heads, the 7-layer CNN feature encoder with group
norm); ``tiny`` keeps the CNN's kernels and strides (one frame per 320
samples, 50 Hz at 16 kHz) with few channels and 2 transformer layers, for
tests. The weights are random: these models test code, not accuracy.

Command line::

    python -m unipool_lobes.frontends.local_models --family wavlm \
        --size base --out DIR

Authors
 * unipool-sv developers 2026
"""

import argparse
import json
import os

import torch
from transformers import (
    HubertConfig,
    HubertModel,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
    WavLMConfig,
    WavLMModel,
)

FAMILIES = {
    "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
    "hubert": (HubertConfig, HubertModel),
    "wavlm": (WavLMConfig, WavLMModel),
}

# The config defaults of transformers are the base models' values; the tiny
# size shrinks the widths and depth but keeps the CNN kernels and strides.
SIZES = {
    "base": {},
    "tiny": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "conv_dim": (16, 16, 16, 16, 16, 16, 16),
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4,
    },
}

# Large checkpoints pair the layer-norm CNN with pre-norm transformer layers
# and a biased CNN; a "layer" model here follows them unless overridden.
LAYER_NORM_COMPANIONS = {"do_stable_layer_norm": True, "conv_bias": True}

MARKER_FILE = "unipool_local_model.json"


def build_config(
    family="wav2vec2",
    size="tiny",
    feat_extract_norm="group",
    **config_overrides,
):
    """Returns the HF config of a local model, without building weights.

    Arguments
    ---------
    family : str
        One of ``"wav2vec2"``, ``"hubert"``, ``"wavlm"``.
    size : str
        ``"base"`` (the real base architecture) or ``"tiny"`` (for tests).
    feat_extract_norm : str
        ``"group"`` (GroupNorm over time in the first CNN layer, as the base
        models) or ``"layer"`` (LayerNorm in every CNN layer, as the large
        models; also turns on ``do_stable_layer_norm`` and ``conv_bias``).
    **config_overrides
        Any other config value, applied last.

    Returns
    -------
    transformers.PretrainedConfig
        The config of the family's model class.

    Raises
    ------
    ValueError
        For an unknown family, size or ``feat_extract_norm``.

    Example
    -------
    >>> config = build_config("wavlm", "base")
    >>> config.num_hidden_layers, config.hidden_size, config.intermediate_size
    (12, 768, 3072)
    >>> tiny = build_config("hubert", "tiny", feat_extract_norm="layer")
    >>> tiny.do_stable_layer_norm, tiny.conv_dim[0]
    (True, 16)
    """
    if family not in FAMILIES:
        raise ValueError(
            f"family must be one of {sorted(FAMILIES)}, got {family!r}"
        )
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    if feat_extract_norm not in ("group", "layer"):
        raise ValueError(
            "feat_extract_norm must be 'group' or 'layer', "
            f"got {feat_extract_norm!r}"
        )
    values = dict(SIZES[size])
    values["feat_extract_norm"] = feat_extract_norm
    if feat_extract_norm == "layer":
        values.update(LAYER_NORM_COMPANIONS)
    values.update(config_overrides)
    config_class, _ = FAMILIES[family]
    return config_class(**values)


def build_model(
    family="wav2vec2",
    size="tiny",
    seed=0,
    feat_extract_norm="group",
    **config_overrides,
):
    """Returns a randomly initialised model, the same for the same seed.

    Arguments
    ---------
    family : str
        One of ``"wav2vec2"``, ``"hubert"``, ``"wavlm"``.
    size : str
        ``"base"`` or ``"tiny"``.
    seed : int
        Seed of the weight initialisation.
    feat_extract_norm : str
        ``"group"`` or ``"layer"`` (see ``build_config``).
    **config_overrides
        Any other config value.

    Returns
    -------
    transformers.PreTrainedModel
        A ``Wav2Vec2Model``, ``HubertModel`` or ``WavLMModel`` in eval mode.

    Example
    -------
    >>> model = build_model("wav2vec2", "tiny", seed=3)
    >>> again = build_model("wav2vec2", "tiny", seed=3)
    >>> bool(
    ...     torch.equal(
    ...         model.encoder.layers[0].attention.q_proj.weight,
    ...         again.encoder.layers[0].attention.q_proj.weight,
    ...     )
    ... )
    True
    """
    config = build_config(family, size, feat_extract_norm, **config_overrides)
    _, model_class = FAMILIES[family]
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = model_class(config)
    return model.eval()


def write_local_model(
    folder,
    family="wav2vec2",
    size="tiny",
    seed=0,
    feat_extract_norm="group",
    do_normalize=False,
    **config_overrides,
):
    """Writes a loadable local model folder (skipped when already there).

    Arguments
    ---------
    folder : str or os.PathLike
        Where to write; created if missing.
    family : str
        One of ``"wav2vec2"``, ``"hubert"``, ``"wavlm"``.
    size : str
        ``"base"`` (about 95M parameters, 380 MB on disk) or ``"tiny"``.
    seed : int
        Seed of the weight initialisation: same arguments, same weights.
    feat_extract_norm : str
        ``"group"`` or ``"layer"`` (see ``build_config``). The feature
        extractor config returns an attention mask for ``"layer"`` models,
        as the large checkpoints' do.
    do_normalize : bool
        Written to the feature-extractor config: whether the waveform is
        normalised to zero mean and unit variance before the model.
    **config_overrides
        Any other model config value (e.g. ``num_hidden_layers=3``).

    Returns
    -------
    str
        The folder, as given.

    Example
    -------
    >>> from transformers import AutoConfig, AutoFeatureExtractor, AutoModel
    >>> out = str(getfixture("tmp_path"))
    >>> folder = write_local_model(out, "hubert", "tiny")
    >>> type(AutoModel.from_pretrained(folder)).__name__
    'HubertModel'
    >>> AutoConfig.from_pretrained(folder).num_hidden_layers
    2
    >>> AutoFeatureExtractor.from_pretrained(folder).do_normalize
    False
    """
    folder = str(folder)
    recipe = {
        "family": family,
        "size": size,
        "seed": seed,
        "feat_extract_norm": feat_extract_norm,
        "do_normalize": bool(do_normalize),
        "config_overrides": config_overrides,
    }
    # json round trip so that tuples compare equal to the stored lists
    recipe = json.loads(json.dumps(recipe, sort_keys=True))
    marker = os.path.join(folder, MARKER_FILE)
    if _holds_recipe(marker, recipe):
        return folder

    model = build_model(
        family, size, seed, feat_extract_norm, **config_overrides
    )
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(marker):
        os.remove(marker)
    model.save_pretrained(folder)
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=bool(do_normalize),
        return_attention_mask=feat_extract_norm == "layer",
    )
    feature_extractor.save_pretrained(folder)
    # The marker is written last: a folder interrupted mid-write is redone.
    with open(marker, "w", encoding="utf-8") as marker_file:
        json.dump(recipe, marker_file, indent=2, sort_keys=True)
    return folder


def _holds_recipe(marker, recipe):
    """Whether the marker file exists and records the same recipe."""
    if not os.path.isfile(marker):
        return False
    with open(marker, encoding="utf-8") as marker_file:
        try:
            return json.load(marker_file) == recipe
        except json.JSONDecodeError:
            return False


def main(argv=None):
    """Command-line entry point: writes one local model folder.

    Arguments
    ---------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    str
        The folder written.

    Example
    -------
    >>> out = str(getfixture("tmp_path"))
    >>> main(["--family", "wavlm", "--size", "tiny", "--out", out]) == out
    True
    """
    parser = argparse.ArgumentParser(
        description="Write a local HF speech model folder with random weights."
    )
    parser.add_argument(
        "--family", choices=sorted(FAMILIES), default="wav2vec2"
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--feat-extract-norm", choices=["group", "layer"], default="group"
    )
    parser.add_argument(
        "--do-normalize",
        action="store_true",
        help="normalise waveforms in the feature-extractor config",
    )
    args = parser.parse_args(argv)
    return write_local_model(
        args.out,
        family=args.family,
        size=args.size,
        seed=args.seed,
        feat_extract_norm=args.feat_extract_norm,
        do_normalize=args.do_normalize,
    )


if __name__ == "__main__":
    print(main())
