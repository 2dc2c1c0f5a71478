"""Tests of the multi-layer baseline backends and the filterbank front-end.

Every backend maps ``[B, L, T, D]`` hidden states and relative lengths to
``[B, 1, E]``; in evaluation an utterance must get the same embedding alone
as padded in a batch of longer ones, whatever the padded frames hold.

Authors
 * unipool-sv developers 2026
"""

import pytest
import torch
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from torch.nn import functional as F

from unipool_lobes.frontends.fbank import FbankFrontEnd
from unipool_lobes.models.lap import LAP
from unipool_lobes.models.layer_weighted import (
    LayerWeightedECAPA,
    PaddingInvariantECAPA,
    fill_past_end,
)
from unipool_lobes.models.mean_pool import LayerMeanPool
from unipool_lobes.models.mhfa import MHFA

NUM_LAYERS, INPUT_SIZE = 5, 32
VALID_FRAMES = [37, 64, 50]
SMALL_ECAPA = {
    "channels": [32, 32, 32, 32, 96],
    "attention_channels": 16,
    "se_channels": 16,
}


def _backends():
    """Small instances of every backend, by name."""
    return {
        "layer_weighted_ecapa": lambda: LayerWeightedECAPA(
            INPUT_SIZE, NUM_LAYERS, lin_neurons=24, **SMALL_ECAPA
        ),
        "layer_weighted_ecapa_layer_norm": lambda: LayerWeightedECAPA(
            INPUT_SIZE,
            NUM_LAYERS,
            layer_norm=True,
            lin_neurons=24,
            **SMALL_ECAPA,
        ),
        "mhfa": lambda: MHFA(
            INPUT_SIZE,
            NUM_LAYERS,
            num_heads=4,
            compression_dim=8,
            embedding_size=24,
        ),
        "lap": lambda: LAP(
            INPUT_SIZE, NUM_LAYERS, channels=16, num_heads=4, embedding_size=24
        ),
        "lap_authors_options": lambda: LAP(
            INPUT_SIZE,
            NUM_LAYERS,
            channels=16,
            num_heads=4,
            embedding_size=24,
            context_std="unbiased",
            time_dropout_mode="frames",
            init="authors",
        ),
        "mhfa_lap_aggregators": lambda: MHFA(
            INPUT_SIZE,
            NUM_LAYERS,
            num_heads=4,
            compression_dim=8,
            embedding_size=24,
            layer_aggregation="lap",
            lap_channels=16,
            lap_num_heads=4,
            init="authors",
        ),
        "mean_pool_projected": lambda: LayerMeanPool(
            INPUT_SIZE, layer_index=1, embedding_size=24
        ),
        "mean_pool": lambda: LayerMeanPool(INPUT_SIZE, layer_index=-1),
    }


BACKENDS = _backends()


def _randomise_batch_norms(module):
    """Non-trivial running statistics, so that eval mode is a real test."""
    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.running_mean.normal_(0, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
    return module


def _padded_batch(fill):
    """Hidden states of three utterances, padded with ``fill``."""
    torch.manual_seed(0)
    num_frames = max(VALID_FRAMES)
    hidden = torch.randn(len(VALID_FRAMES), NUM_LAYERS, num_frames, INPUT_SIZE)
    for row, frames in enumerate(VALID_FRAMES):
        padding = hidden[row, :, frames:]
        if fill == "large":
            padding.copy_(1e4 * torch.randn_like(padding))
        else:
            padding.fill_(float("nan"))
    lengths = torch.tensor(VALID_FRAMES, dtype=torch.float32) / num_frames
    return hidden, lengths


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_output_shape(name):
    """[B, L, T, D] and lengths give [B, 1, E]."""
    backend = BACKENDS[name]()
    hidden, lengths = _padded_batch("large")
    out = backend(hidden, lengths)
    expected = INPUT_SIZE if name == "mean_pool" else 24
    assert out.shape == (len(VALID_FRAMES), 1, expected)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("fill", ["large", "nan"])
@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_padding_invariance(name, fill):
    """Alone or padded in a batch (padding large or NaN): same embedding."""
    torch.manual_seed(1)
    backend = _randomise_batch_norms(BACKENDS[name]()).eval()
    hidden, lengths = _padded_batch(fill)
    with torch.no_grad():
        batched = backend(hidden, lengths)
        for row, frames in enumerate(VALID_FRAMES):
            alone = backend(hidden[row : row + 1, :, :frames])
            torch.testing.assert_close(
                batched[row : row + 1], alone, atol=1e-5, rtol=1e-5
            )


@pytest.mark.parametrize("name", sorted(set(BACKENDS) - {"mean_pool"}))
def test_gradients_reach_all_parameters(name):
    """In training, on a padded batch, every parameter gets a gradient."""
    torch.manual_seed(2)
    backend = BACKENDS[name]().train()
    hidden, lengths = _padded_batch("large")
    out = backend(hidden, lengths)
    # A random projection: the sum of a batch-normalised output is constant.
    (out * torch.randn_like(out)).sum().backward()
    for param_name, param in backend.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, param_name


def test_speechbrain_ecapa_checkpoint_loads_and_matches():
    """The fix changes no weights: SpeechBrain's state dict loads, and
    unpadded inputs give SpeechBrain's output exactly."""
    torch.manual_seed(3)
    reference = _randomise_batch_norms(ECAPA_TDNN(20, **SMALL_ECAPA)).eval()
    ours = PaddingInvariantECAPA(20, **SMALL_ECAPA).eval()
    ours.load_state_dict(reference.state_dict())
    feats = torch.randn(2, 45, 20)
    with torch.no_grad():
        torch.testing.assert_close(ours(feats), reference(feats))


def test_ecapa_lengths_with_float_error():
    """A length n / T whose product with T rounds above n in float32 still
    covers n frames (SpeechBrain's mask would take n + 1)."""
    pairs = [
        (n, t)
        for t in range(40, 90)
        for n in range(10, t)
        if (torch.tensor(n / t, dtype=torch.float32) * t).item() > n
    ]
    valid, total = pairs[0]
    torch.manual_seed(4)
    ecapa = _randomise_batch_norms(
        PaddingInvariantECAPA(20, **SMALL_ECAPA)
    ).eval()
    feats = torch.randn(1, total, 20)
    feats[:, valid:] = 1e4
    lengths = torch.tensor([valid / total], dtype=torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(
            ecapa(feats, lengths), ecapa(feats[:, :valid]), atol=1e-5, rtol=0
        )


@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
def test_fill_past_end_matches_padding_of_each_row(mode):
    """Past each row's end come the frames F.pad would add to that row."""
    torch.manual_seed(5)
    x = torch.randn(3, 4, 12)
    counts = torch.tensor([12, 7, 5])
    extended = fill_past_end(x, counts, extra_frames=3, mode=mode)
    assert extended.shape == (3, 4, 15)
    for row, count in enumerate(counts.tolist()):
        expected = F.pad(x[row : row + 1, :, :count], (0, 3), mode=mode)
        torch.testing.assert_close(
            extended[row : row + 1, :, : count + 3], expected
        )


def test_mhfa_matches_per_head_loop():
    """MHFA equals a plain per-utterance, per-head computation."""
    torch.manual_seed(6)
    mhfa = BACKENDS["mhfa"]()
    with torch.no_grad():
        mhfa.key_layer_weights.normal_()
        mhfa.value_layer_weights.normal_()
        hidden, lengths = _padded_batch("large")
        out = mhfa(hidden, lengths).squeeze(1)
        key_w = mhfa.key_layer_weights.softmax(0)
        value_w = mhfa.value_layer_weights.softmax(0)
        for row, frames in enumerate(VALID_FRAMES):
            layers = hidden[row, :, :frames]  # [L, T, D]
            keys = mhfa.key_compression((key_w[:, None, None] * layers).sum(0))
            values = mhfa.value_compression(
                (value_w[:, None, None] * layers).sum(0)
            )
            heads = []
            for head in range(mhfa.attention_heads.out_features):
                scores = keys @ mhfa.attention_heads.weight[head]
                scores = scores + mhfa.attention_heads.bias[head]
                heads.append(scores.softmax(0) @ values)
            expected = mhfa.projection(torch.cat(heads))
            torch.testing.assert_close(out[row], expected)


def test_mean_pool_is_mean_of_the_chosen_layer():
    """LayerMeanPool averages the valid frames of its layer."""
    hidden, lengths = _padded_batch("large")
    out = LayerMeanPool(INPUT_SIZE, layer_index=2)(hidden, lengths)
    for row, frames in enumerate(VALID_FRAMES):
        expected = hidden[row, 2, :frames].mean(dim=0)
        torch.testing.assert_close(out[row, 0], expected)


def test_lap_batch_norm_statistics_skip_padding():
    """In training, LAP's first batch norm sees the valid frames only."""
    lap = BACKENDS["lap"]().train()
    norm = lap.layer_pooling.input_norm
    norm.momentum = 1.0
    hidden, lengths = _padded_batch("large")
    lap(hidden, lengths)
    valid = torch.cat(
        [hidden[row, :, :n] for row, n in enumerate(VALID_FRAMES)], dim=1
    )
    expected = valid.reshape(-1, INPUT_SIZE).mean(dim=0)
    torch.testing.assert_close(norm.running_mean, expected)


def test_layer_weights_start_uniform():
    """The plotted layer weights are a softmax, uniform at the start."""
    backend = BACKENDS["layer_weighted_ecapa"]()
    weights = backend.layer_weights
    torch.testing.assert_close(weights, torch.full((NUM_LAYERS,), 0.2))
    with torch.no_grad():
        backend.weights[0] = 3.0
    assert backend.layer_weights.argmax() == 0
    torch.testing.assert_close(backend.layer_weights.sum(), torch.tensor(1.0))
    assert MHFA(INPUT_SIZE, NUM_LAYERS).layer_weights.shape == (2, NUM_LAYERS)


def test_parameter_counts_of_defaults():
    """Base-size (13 x 768) parameter counts from the published designs."""
    d, layers, comp, heads, emb = 768, 13, 128, 64, 256
    mhfa_params = 2 * layers + 2 * (d * comp + comp)
    mhfa_params += comp * heads + heads + heads * comp * emb + emb
    assert sum(p.numel() for p in MHFA().parameters()) == mhfa_params
    ecapa = sum(p.numel() for p in ECAPA_TDNN(d).parameters())
    lw = sum(p.numel() for p in LayerWeightedECAPA().parameters())
    assert lw == ecapa + layers


@pytest.mark.parametrize(
    "backend, message",
    [
        (lambda: MHFA(INPUT_SIZE, num_layers=4), "num_layers=4"),
        (lambda: LAP(INPUT_SIZE + 4, NUM_LAYERS, num_heads=4), "input_size"),
        (lambda: LayerMeanPool(INPUT_SIZE, layer_index=9), "layer_index=9"),
    ],
)
def test_bad_input_is_named(backend, message):
    """Mismatched inputs raise a ValueError that says what is wrong."""
    hidden, lengths = _padded_batch("large")
    with pytest.raises(ValueError, match=message):
        backend()(hidden, lengths)


def test_lengths_outside_unit_interval_raise():
    """Absolute lengths passed by mistake are refused."""
    hidden, _ = _padded_batch("large")
    with pytest.raises(ValueError, match="relative lengths"):
        BACKENDS["mhfa"]()(hidden, torch.tensor([37.0, 64.0, 50.0]))


# ---------------------------------------------------------------- front-end


def _waves(sample_counts, fill=1e3):
    """Random waveforms, padded to the longest with large random values."""
    torch.manual_seed(7)
    longest = max(sample_counts)
    wav = torch.randn(len(sample_counts), longest)
    for row, count in enumerate(sample_counts):
        wav[row, count:] = fill * torch.randn(longest - count)
    lens = torch.tensor(sample_counts, dtype=torch.float32) / longest
    return wav, lens


@pytest.mark.parametrize("mean_norm", [True, False])
def test_fbank_valid_frames_same_alone_and_batched(mean_norm):
    """Each utterance's frames are the same alone or padded in a batch."""
    counts = [8000, 16000, 11111]
    wav, lens = _waves(counts)
    front_end = FbankFrontEnd(n_mels=24, mean_norm=mean_norm)
    feats, feat_lens = front_end(wav, lens)
    assert feats.shape == (3, 1 + 16000 // 160, 24)
    for row, count in enumerate(counts):
        alone, alone_lens = front_end(wav[row : row + 1, :count])
        frames = alone.shape[1]
        assert frames == 1 + count // 160
        assert round(feat_lens[row].item() * feats.shape[1]) == frames
        torch.testing.assert_close(
            feats[row : row + 1, :frames], alone, atol=1e-4, rtol=1e-5
        )
        assert alone_lens.item() == 1.0


def test_fbank_is_speechbrain_fbank_then_sentence_mean_norm():
    """Unpadded, the front-end is SpeechBrain's Fbank minus the mean."""
    wav, _ = _waves([12000])
    feats, _ = FbankFrontEnd(n_mels=40)(wav)
    reference = Fbank(n_mels=40)(wav)
    reference = reference - reference.mean(dim=1, keepdim=True)
    torch.testing.assert_close(feats, reference, atol=1e-4, rtol=1e-5)


def test_fbank_feeds_speechbrain_xvector_and_ecapa():
    """The output plugs into SpeechBrain's embedding models positionally."""
    from speechbrain.lobes.models.Xvector import Xvector

    wav, lens = _waves([8000, 16000])
    feats, feat_lens = FbankFrontEnd(n_mels=24)(wav, lens)
    assert Xvector(in_channels=24)(feats, feat_lens).shape == (2, 1, 512)
    ecapa = PaddingInvariantECAPA(24, **SMALL_ECAPA, lin_neurons=16)
    assert ecapa(feats, feat_lens).shape == (2, 1, 16)
