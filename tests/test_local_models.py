"""Tests of the local HF model writer."""

import os
import sys

import processes
import pytest
import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

from unipool_lobes.frontends.local_models import (
    build_config,
    build_model,
    write_local_model,
)

MODEL_CLASSES = {
    "wav2vec2": "Wav2Vec2Model",
    "hubert": "HubertModel",
    "wavlm": "WavLMModel",
}
BASE_KERNELS = (10, 3, 3, 3, 3, 2, 2)
BASE_STRIDES = (5, 2, 2, 2, 2, 2, 2)


def weights_file(folder):
    """The safetensors file of a saved model folder."""
    return os.path.join(folder, "model.safetensors")


@pytest.mark.parametrize("norm", ["group", "layer"])
@pytest.mark.parametrize("family", sorted(MODEL_CLASSES))
def test_tiny_folders_load_offline(local_ssl_model, family, norm):
    """Config, model and feature extractor load from the folder."""
    folder = local_ssl_model(family, norm, do_normalize=norm == "layer")
    config = AutoConfig.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder)
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    assert type(model).__name__ == MODEL_CLASSES[family]
    assert config.feat_extract_norm == norm
    assert config.do_stable_layer_norm == (norm == "layer")
    assert config.num_hidden_layers == 2 and config.hidden_size == 32
    assert tuple(config.conv_kernel) == BASE_KERNELS
    assert tuple(config.conv_stride) == BASE_STRIDES
    assert extractor.do_normalize == (norm == "layer")
    assert extractor.return_attention_mask == (norm == "layer")
    assert extractor.sampling_rate == 16000
    # 320 samples per frame: one second gives 49 frames, as the base models.
    with torch.no_grad():
        frames = model(torch.randn(1, 16000)).last_hidden_state.shape[1]
    assert frames == 49


@pytest.mark.parametrize("family", sorted(MODEL_CLASSES))
def test_base_configs_are_the_real_base_architecture(family):
    """12 layers, 768 hidden, 3072 FFN, 12 heads, the 7-layer group CNN."""
    config = build_config(family, "base")
    assert config.num_hidden_layers == 12
    assert config.hidden_size == 768
    assert config.intermediate_size == 3072
    assert config.num_attention_heads == 12
    assert tuple(config.conv_dim) == (512,) * 7
    assert tuple(config.conv_kernel) == BASE_KERNELS
    assert tuple(config.conv_stride) == BASE_STRIDES
    assert config.feat_extract_norm == "group"
    assert not config.do_stable_layer_norm


def test_wav2vec2_base_parameter_count():
    """wav2vec2-base has about 95M parameters (94.4M)."""
    model = build_model("wav2vec2", "base")
    count = sum(param.numel() for param in model.parameters())
    assert 94e6 < count < 95e6


def test_same_seed_same_weights_and_skip_rewrite(tmp_path):
    """Deterministic from the seed; an identical folder is not rewritten."""
    first = write_local_model(tmp_path / "a", "wavlm", seed=1)
    second = write_local_model(tmp_path / "b", "wavlm", seed=1)
    other = write_local_model(tmp_path / "c", "wavlm", seed=2)
    weights = [
        AutoModel.from_pretrained(folder).state_dict()
        for folder in (first, second, other)
    ]
    name = "encoder.layers.0.attention.q_proj.weight"
    assert torch.equal(weights[0][name], weights[1][name])
    assert not torch.equal(weights[0][name], weights[2][name])

    stamp = os.stat(weights_file(first)).st_mtime_ns
    write_local_model(tmp_path / "a", "wavlm", seed=1)
    assert os.stat(weights_file(first)).st_mtime_ns == stamp
    write_local_model(tmp_path / "a", "wavlm", seed=1, num_hidden_layers=3)
    assert AutoConfig.from_pretrained(first).num_hidden_layers == 3


def test_config_overrides_and_bad_arguments():
    """Overrides apply last; unknown names fail with a clear message."""
    config = build_config("hubert", "tiny", "layer", do_stable_layer_norm=False)
    assert config.feat_extract_norm == "layer"
    assert not config.do_stable_layer_norm
    with pytest.raises(ValueError, match="family"):
        build_config("whisper")
    with pytest.raises(ValueError, match="size"):
        build_config("wavlm", "huge")
    with pytest.raises(ValueError, match="feat_extract_norm"):
        build_config("wavlm", "tiny", "batch")


def test_command_line(tmp_path):
    """python -m unipool_lobes.frontends.local_models writes a model."""
    out = tmp_path / "cli_model"
    processes.run(
        [
            sys.executable,
            "-m",
            "unipool_lobes.frontends.local_models",
            "--family",
            "hubert",
            "--size",
            "tiny",
            "--feat-extract-norm",
            "layer",
            "--do-normalize",
            "--out",
            str(out),
        ],
        120,
        check=True,
    )
    assert AutoConfig.from_pretrained(out).feat_extract_norm == "layer"
    assert AutoFeatureExtractor.from_pretrained(out).do_normalize
