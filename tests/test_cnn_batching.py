"""Tests of the masked one-pass CNN (``cnn_batching``) on tiny local models.

``unipool_lobes.frontends.masked_cnn.masked_cnn_features`` runs the group-norm
CNN once on a padded batch with the norm's statistics taken over each
utterance's valid frames; it must give what each utterance alone gives, as
``MultiLayerSSL``'s per-length loop does, and must trace to ONNX.
"""

import pytest
import torch
from torch import nn

import unipool_lobes.frontends.ssl as ssl_module
from unipool_lobes.frontends.masked_cnn import (
    conv_output_lengths,
    masked_cnn_features,
)
from unipool_lobes.frontends.ssl import MultiLayerSSL

FAMILIES = ["wav2vec2", "hubert", "wavlm"]
TOLERANCE = 1e-5
# Very different lengths: 400 samples give exactly one frame, 16001 and
# 5555 are not multiples of the CNN's total stride (320), 32000 is 2 s.
LENGTHS = [32000, 400, 16001, 5555]


def make_batch(lengths=LENGTHS, seed=0):
    """Random utterances and their batch, padded with large values.

    The padding is not zero on purpose: the masked CNN must not depend on
    what lies after an utterance (the front-end zeroes it, but the CNN
    function promises more).
    """
    generator = torch.Generator().manual_seed(seed)
    utterances = [
        0.3 + 2.0 * torch.randn(length, generator=generator)
        for length in lengths
    ]
    batch = 5.0 * torch.ones(len(lengths), max(lengths))
    for row, utterance in enumerate(utterances):
        batch[row, : len(utterance)] = utterance
    return utterances, batch, torch.tensor(lengths)


def cnn_vs_alone_error(encoder, features, utterances, check_zeros=True):
    """Largest difference over valid frames of ``features`` vs alone.

    Also checks that the frames after each utterance's own are zero.
    """
    error = 0.0
    for row, utterance in enumerate(utterances):
        alone = encoder(utterance[None]).transpose(1, 2)[0]
        valid = alone.shape[0]
        if check_zeros:
            assert torch.all(features[row, valid:] == 0)
        difference = features[row, :valid] - alone
        error = max(error, difference.abs().max().item())
    return error


def front_end_vs_alone_error(ssl, utterances, batch, lengths):
    """Largest difference over layers and valid frames, batched vs alone."""
    zeroed = batch.clone()
    for row, length in enumerate(lengths.tolist()):
        zeroed[row, length:] = 0
    hidden_states, _ = ssl(zeroed, lengths / batch.shape[1])
    error = 0.0
    for row, utterance in enumerate(utterances):
        alone, _ = ssl(utterance[None])
        valid = alone.shape[2]
        assert torch.all(hidden_states[row, :, valid:] == 0)
        difference = hidden_states[row, :, :valid] - alone[0]
        error = max(error, difference.abs().max().item())
    return error


@pytest.mark.parametrize("family", FAMILIES)
def test_masked_cnn_equals_alone_and_naive_does_not(local_ssl_model, family):
    """One masked CNN pass gives each utterance's own features.

    Catches statistics taken over the padding (naive batching, measured
    here to differ by more than 1e-2, so the comparison can fail), a wrong
    valid-frame count (off by one at a length that is not a multiple of the
    stride, or at the one-frame length) and padded frames left non-zero.
    """
    ssl = MultiLayerSSL(local_ssl_model(family, "group"))
    encoder = ssl.model.feature_extractor
    utterances, batch, lengths = make_batch()
    with torch.no_grad():
        masked = masked_cnn_features(encoder, batch, lengths)
        naive = encoder(batch).transpose(1, 2)
        assert masked.shape == naive.shape
        assert cnn_vs_alone_error(encoder, masked, utterances) < TOLERANCE
        naive_error = cnn_vs_alone_error(
            encoder, naive, utterances, check_zeros=False
        )
    assert naive_error > 1e-2


@pytest.mark.parametrize("family", FAMILIES)
def test_front_end_masked_equals_per_length_and_alone(local_ssl_model, family):
    """MultiLayerSSL's hidden states with cnn_batching="masked" are exact.

    Catches the masked branch not being taken or feeding the transformer
    other features than the per-length loop (compared layer by layer) or
    than the utterance alone (naive batching fails that check: above and
    in ``tests/test_ssl.py``).
    """
    folder = local_ssl_model(family, "group")
    masked = MultiLayerSSL(folder, cnn_batching="masked")
    per_length = MultiLayerSSL(folder, cnn_batching="per_length")
    utterances, batch, lengths = make_batch()
    error = front_end_vs_alone_error(masked, utterances, batch, lengths)
    assert error < TOLERANCE
    zeroed = batch.clone()
    for row, length in enumerate(lengths.tolist()):
        zeroed[row, length:] = 0
    relative = lengths / batch.shape[1]
    first, first_lens = masked(zeroed, relative)
    second, second_lens = per_length(zeroed, relative)
    assert torch.equal(first_lens, second_lens)
    assert (first - second).abs().max().item() < TOLERANCE


def test_fine_tuning_gradients_match_per_length(local_ssl_model):
    """freeze=False: the masked pass back-propagates as the loop does.

    Catches a masked norm cut from the graph (no gradient to the CNN or to
    the GroupNorm's affine) or with other gradients than the per-length
    loop's (same weights, same dropout masks by seeding).
    """
    folder = local_ssl_model("wav2vec2", "group")
    _, batch, lengths = make_batch([16001, 7000, 400])
    for row, length in enumerate(lengths.tolist()):
        batch[row, length:] = 0
    relative = lengths / batch.shape[1]
    gradients = {}
    for batching in ["masked", "per_length"]:
        ssl = MultiLayerSSL(folder, freeze=False, cnn_batching=batching)
        ssl.train()
        torch.manual_seed(0)
        hidden_states, _ = ssl(batch, relative)
        assert hidden_states.requires_grad
        hidden_states.square().mean().backward()
        gradients[batching] = {
            name: param.grad
            for name, param in ssl.named_parameters()
            if param.requires_grad
        }
    masked, per_length = gradients["masked"], gradients["per_length"]
    assert masked.keys() == per_length.keys()
    group_norm = "model.feature_extractor.conv_layers.0.layer_norm.weight"
    assert masked[group_norm] is not None
    assert masked[group_norm].abs().sum() > 0
    for name, gradient in masked.items():
        assert gradient is not None, name
        assert torch.allclose(
            gradient, per_length[name], rtol=1e-3, atol=1e-6
        ), name


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_norm_models_unchanged(local_ssl_model, family):
    """A "layer" CNN (local in time) runs batched whatever cnn_batching is.

    Catches the masked path changing models it is not for: the front-end's
    output must be identical to the per-length setting's, and the masked
    CNN function on such an encoder must equal HF's plain batched call.
    """
    folder = local_ssl_model(family, "layer")
    _, batch, lengths = make_batch()
    for row, length in enumerate(lengths.tolist()):
        batch[row, length:] = 0
    relative = lengths / batch.shape[1]
    masked = MultiLayerSSL(folder, cnn_batching="masked")
    per_length = MultiLayerSSL(folder, cnn_batching="per_length")
    assert torch.equal(
        masked(batch, relative)[0], per_length(batch, relative)[0]
    )
    encoder = masked.model.feature_extractor
    with torch.no_grad():
        plain = encoder(batch).transpose(1, 2)
        features = masked_cnn_features(encoder, batch, lengths)
    valid = masked.frame_lengths(lengths)
    for row, frames in enumerate(valid.tolist()):
        assert torch.allclose(
            features[row, :frames], plain[row, :frames], atol=1e-6
        )
        assert torch.all(features[row, frames:] == 0)


def test_group_norm_with_fewer_groups_than_channels(local_ssl_model):
    """Groups of several channels share statistics over valid frames.

    HF's CNNs have one group per channel; a GroupNorm with 4 groups of 4
    channels catches statistics taken per channel instead of per group.
    """
    ssl = MultiLayerSSL(local_ssl_model("hubert", "group"))
    encoder = ssl.model.feature_extractor
    first = encoder.conv_layers[0]
    grouped = nn.GroupNorm(4, first.layer_norm.num_channels)
    with torch.no_grad():
        grouped.weight.uniform_(0.5, 1.5)
        grouped.bias.uniform_(-0.5, 0.5)
    first.layer_norm = grouped
    utterances, batch, lengths = make_batch([20000, 5000, 401])
    with torch.no_grad():
        features = masked_cnn_features(encoder, batch, lengths)
        assert cnn_vs_alone_error(encoder, features, utterances) < TOLERANCE


def test_too_short_utterance_and_nan_padding_give_no_nan(local_ssl_model):
    """An utterance shorter than one frame gives zero frames, not NaN.

    Its group-norm count is zero; dividing by it would put NaN in its row
    (and a NaN gradient into the shared weights when fine-tuning). The
    padding is NaN here: masking by multiplying (NaN * 0 = NaN) instead of
    filling would spread it into the statistics of the valid frames.
    """
    ssl = MultiLayerSSL(local_ssl_model("wavlm", "group"))
    encoder = ssl.model.feature_extractor
    utterances, batch, lengths = make_batch([8000, 3001, 399])
    for row, length in enumerate(lengths.tolist()):
        batch[row, length:] = float("nan")
    with torch.no_grad():
        features = masked_cnn_features(encoder, batch, lengths)
        assert torch.isfinite(features).all()
        assert torch.all(features[2] == 0)
        error = cnn_vs_alone_error(encoder, features[:2], utterances[:2])
    assert error < TOLERANCE


def test_conv_lengths_follow_the_model(local_ssl_model):
    """The per-layer length formula gives the model's own frame count.

    Catches an off-by-one in the valid-frame count, which would let one
    frame touching the padding into the statistics.
    """
    ssl = MultiLayerSSL(local_ssl_model("wav2vec2", "group"))
    lengths = torch.tensor([399, 400, 719, 720, 16000, 16001, 16319, 33333])
    frames = lengths
    for layer in ssl.model.feature_extractor.conv_layers:
        frames = conv_output_lengths(layer.conv, frames)
    assert torch.equal(frames, ssl.frame_lengths(lengths).clamp(min=0))


def test_cnn_batching_is_validated_and_auto_follows_the_table(
    local_ssl_model, monkeypatch
):
    """cnn_batching: bad values refused; "auto" obeys CNN_BATCHING_AUTO.

    Catches a typo silently falling back to a default, and an "auto" that
    ignores the per-device table (checked by which path runs on CPU).
    """
    folder = local_ssl_model("wav2vec2", "group")
    with pytest.raises(ValueError, match="per_length.*masked"):
        MultiLayerSSL(folder, cnn_batching="batched")
    ssl = MultiLayerSSL(folder)
    assert ssl.cnn_batching == "auto"
    masked_calls = []

    def counting(*args):
        masked_calls.append(args[1].shape[0])
        return masked_cnn_features(*args)

    monkeypatch.setattr(ssl_module, "masked_cnn_features", counting)
    loop_calls = []
    ssl.model.feature_extractor.register_forward_hook(
        lambda module, args, output: loop_calls.append(args[0].shape[0])
    )
    _, batch, lengths = make_batch([9000, 16000, 9000])
    relative = lengths / batch.shape[1]
    for choice, masked_expected, loop_expected in [
        ("masked", [3], []),
        ("per_length", [], [1, 2]),
    ]:
        monkeypatch.setitem(ssl_module.CNN_BATCHING_AUTO, "cpu", choice)
        masked_calls.clear()
        loop_calls.clear()
        ssl(batch, relative)
        assert masked_calls == masked_expected
        assert sorted(loop_calls) == loop_expected


def test_masked_cnn_exports_to_onnx_with_dynamic_length(
    local_ssl_model, tmp_path
):
    """The masked CNN traces to ONNX with dynamic batch and length axes.

    Traced on one batch, run by onnxruntime on another (other batch size,
    lengths and padded length): catches lengths frozen into the graph as
    constants and data-driven Python control flow.
    """
    onnxruntime = pytest.importorskip("onnxruntime")

    class _MaskedCNN(nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, wav, lengths):
            return masked_cnn_features(self.encoder, wav, lengths)

    ssl = MultiLayerSSL(local_ssl_model("wavlm", "group"))
    module = _MaskedCNN(ssl.model.feature_extractor).eval()
    _, batch, lengths = make_batch([8000, 3000])
    path = tmp_path / "masked_cnn.onnx"
    torch.onnx.export(
        module,
        (batch, lengths),
        str(path),
        dynamo=False,
        input_names=["wav", "lengths"],
        output_names=["features"],
        dynamic_axes={
            "wav": {0: "batch", 1: "samples"},
            "lengths": {0: "batch"},
            "features": {0: "batch", 1: "frames"},
        },
    )
    session = onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"]
    )
    utterances, other, other_lengths = make_batch([20000, 401, 12345], seed=1)
    (features,) = session.run(
        None, {"wav": other.numpy(), "lengths": other_lengths.numpy()}
    )
    features = torch.from_numpy(features)
    with torch.no_grad():
        reference = module(other, other_lengths)
        encoder = module.encoder
        assert features.shape == reference.shape
        assert (features - reference).abs().max().item() < TOLERANCE
        assert cnn_vs_alone_error(encoder, features, utterances) < TOLERANCE
