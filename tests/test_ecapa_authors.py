"""Tests of the UniPool authors' ECAPA-TDNN lobe and their FbankAug.

The parity tests hold a small re-implementation of the authors' encoder in
their layout ``[B, F, T]`` and with their module names (so that its state
dict has their keys), written from the structure of their code, not
copied.

Authors
 * unipool-sv developers 2026
"""

import math

import pytest
import torch
from torch import nn

from unipool_lobes.models.ecapa_authors import (
    ECAPATDNN,
    ContextAttentiveStatsPool,
    FbankAug,
    Res2NetSEBlock,
    SqueezeExcitation,
)

# Small sizes for the numeric tests (the authors' C = 512 only for counts).
SMALL = {
    "input_size": 80,
    "channels": 32,
    "se_channels": 16,
    "mfa_channels": 48,
    "attention_channels": 16,
    "embedding_size": 24,
}
AUTHORS_PARAMETERS = 6_978_176


# --------------------------------------------------------------------------
# A reference of the authors' encoder, their layout and key names
# --------------------------------------------------------------------------


class RefSE(nn.Module):
    """Squeeze-excitation as a Sequential (keys ``se.1``, ``se.3``)."""

    def __init__(self, channels, bottleneck=128):
        super().__init__()
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool1d(1),
            nn.Conv1d(channels, bottleneck, 1),
            nn.ReLU(),
            nn.Conv1d(bottleneck, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.se(x)


class RefBottle2neck(nn.Module):
    """Res2Net block: conv1/bn1, convs/bns, conv3/bn3, se."""

    def __init__(self, planes, dilation, scale=8):
        super().__init__()
        self.width = math.floor(planes / scale)
        self.nums = scale - 1
        self.conv1 = nn.Conv1d(planes, self.width * scale, 1)
        self.bn1 = nn.BatchNorm1d(self.width * scale)
        self.convs = nn.ModuleList(
            nn.Conv1d(
                self.width, self.width, 3, dilation=dilation, padding=dilation
            )
            for _ in range(self.nums)
        )
        self.bns = nn.ModuleList(
            nn.BatchNorm1d(self.width) for _ in range(self.nums)
        )
        self.conv3 = nn.Conv1d(self.width * scale, planes, 1)
        self.bn3 = nn.BatchNorm1d(planes)
        self.se = RefSE(planes)

    def forward(self, x):
        out = self.bn1(torch.relu(self.conv1(x)))
        spx = torch.split(out, self.width, 1)
        pieces = []
        sp = None
        for i in range(self.nums):
            sp = spx[i] if i == 0 else sp + spx[i]
            sp = self.bns[i](torch.relu(self.convs[i](sp)))
            pieces.append(sp)
        out = torch.cat([*pieces, spx[self.nums]], 1)
        out = self.bn3(torch.relu(self.conv3(out)))
        return self.se(out) + x


class RefECAPA(nn.Module):
    """The authors' encoder after the front end, ``[B, 80, T]`` input."""

    def __init__(self, C):
        super().__init__()
        self.conv1 = nn.Conv1d(80, C, 5, stride=1, padding=2)
        self.bn1 = nn.BatchNorm1d(C)
        self.layer1 = RefBottle2neck(C, 2)
        self.layer2 = RefBottle2neck(C, 3)
        self.layer3 = RefBottle2neck(C, 4)
        self.layer4 = nn.Conv1d(3 * C, 1536, 1)
        self.attention = nn.Sequential(
            nn.Conv1d(4608, 256, 1),
            nn.ReLU(),
            nn.BatchNorm1d(256),
            nn.Tanh(),
            nn.Conv1d(256, 1536, 1),
            nn.Softmax(dim=2),
        )
        self.bn5 = nn.BatchNorm1d(3072)
        self.fc6 = nn.Linear(3072, 192)
        self.bn6 = nn.BatchNorm1d(192)

    def forward(self, x):
        x = self.bn1(torch.relu(self.conv1(x)))
        x1 = self.layer1(x)
        x2 = self.layer2(x + x1)
        x3 = self.layer3(x + x1 + x2)
        x = torch.relu(self.layer4(torch.cat((x1, x2, x3), dim=1)))
        t = x.shape[-1]
        mean = torch.mean(x, dim=2, keepdim=True).repeat(1, 1, t)
        std = torch.sqrt(
            torch.var(x, dim=2, keepdim=True).clamp(min=1e-4)
        ).repeat(1, 1, t)
        w = self.attention(torch.cat((x, mean, std), dim=1))
        mu = torch.sum(x * w, dim=2)
        sg = torch.sqrt((torch.sum(x**2 * w, dim=2) - mu**2).clamp(min=1e-4))
        return self.bn6(self.fc6(self.bn5(torch.cat((mu, sg), 1))))


_BLOCK_KEYS = {
    "conv1": "conv_in",
    "bn1": "norm_in",
    "convs": "res2_convs",
    "bns": "res2_norms",
    "conv3": "conv_out",
    "bn3": "norm_out",
    "se.se.1": "se.squeeze",
    "se.se.3": "se.excite",
}
_TOP_KEYS = {
    "conv1": "input_conv",
    "bn1": "input_norm",
    "layer4": "mfa",
    "attention.0": "pooling.attention_in",
    "attention.2": "pooling.attention_norm",
    "attention.4": "pooling.attention_out",
    "bn5": "stats_norm",
    "fc6": "embedding",
    "bn6": "embedding_norm",
}


def authors_key_to_ours(key):
    """Maps one key of the authors' state dict to ours."""
    if key.startswith("layer") and key[5] in "123":
        block = int(key[5]) - 1
        rest = key[len("layer1.") :]
        table, prefix = _BLOCK_KEYS, f"blocks.{block}."
    else:
        rest, table, prefix = key, _TOP_KEYS, ""
    for old, new in table.items():
        if rest.startswith(old + "."):
            return prefix + new + rest[len(old) :]
    raise KeyError(key)


def randomize_norms(model, seed=0):
    """Gives every batch norm non-trivial affine and running statistics."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=gen) * 0.2)
            module.running_var.copy_(torch.rand(size, generator=gen) + 0.5)
            with torch.no_grad():
                module.weight.copy_(torch.rand(size, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(size, generator=gen) * 0.2)
    return model


def ours_from_reference(ref, channels):
    """Our model with the reference's weights (strict in both directions)."""
    ours = ECAPATDNN(channels=channels)
    mapped = {authors_key_to_ours(k): v for k, v in ref.state_dict().items()}
    assert len(mapped) == len(ref.state_dict())
    ours.load_state_dict(mapped, strict=True)
    return ours


def small_model(seed=0):
    """A small randomly initialised model in eval mode."""
    torch.manual_seed(seed)
    return randomize_norms(ECAPATDNN(**SMALL), seed).eval()


# --------------------------------------------------------------------------
# Structure and parity with the authors
# --------------------------------------------------------------------------


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_parameter_count_matches_authors_structure():
    """C = 512, 80 inputs: 6,978,176 parameters, as the authors' encoder."""
    C, width, bottleneck = 512, 512 // 8, 128
    block = (
        (C * width * 8 + width * 8)  # conv1
        + 2 * width * 8  # bn1
        + 7 * (width * width * 3 + width + 2 * width)  # convs, bns
        + (width * 8 * C + C)  # conv3
        + 2 * C  # bn3
        + (C * bottleneck + bottleneck + bottleneck * C + C)  # se
    )
    analytic = (
        (80 * C * 5 + C + 2 * C)
        + 3 * block
        + (3 * C * 1536 + 1536)
        + (4608 * 256 + 256 + 2 * 256 + 256 * 1536 + 1536)
        + 2 * 3072
        + (3072 * 192 + 192)
        + 2 * 192
    )
    assert analytic == AUTHORS_PARAMETERS
    assert _count(RefECAPA(512)) == AUTHORS_PARAMETERS
    assert _count(ECAPATDNN()) == AUTHORS_PARAMETERS


def test_state_dict_keys_map_one_to_one():
    """Every key of the authors' encoder has exactly one of ours."""
    ref = RefECAPA(64)
    mapped = {authors_key_to_ours(k) for k in ref.state_dict()}
    assert mapped == set(ECAPATDNN(channels=64).state_dict())


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_matches_authors_forward_without_lengths(mode):
    """lengths=None: the authors' computation, in eval and train mode."""
    torch.manual_seed(0)
    ref = randomize_norms(RefECAPA(64))
    ours = ours_from_reference(ref, 64)
    ref.train(mode == "train")
    ours.train(mode == "train")
    feats = torch.randn(3, 70, 80)
    with torch.no_grad():
        expected = ref(feats.transpose(1, 2))
        got = ours(feats)
    assert got.shape == (3, 1, 192)
    torch.testing.assert_close(got[:, 0], expected, atol=1e-5, rtol=1e-5)


def test_full_lengths_equal_no_lengths():
    """Relative lengths of 1 give the unmasked computation."""
    model = small_model()
    feats = torch.randn(2, 40, 80)
    with torch.no_grad():
        torch.testing.assert_close(
            model(feats, torch.ones(2)), model(feats), atol=0, rtol=0
        )


# --------------------------------------------------------------------------
# Padding invariance
# --------------------------------------------------------------------------


def _alone_vs_batch(model, frames, padding_value):
    """Max |alone - batch| over utterances of ``frames`` valid frames."""
    torch.manual_seed(1)
    longest = max(frames)
    utterances = [torch.randn(n, 80) for n in frames]
    batch = torch.full((len(frames), longest, 80), padding_value)
    for i, utterance in enumerate(utterances):
        batch[i, : len(utterance)] = utterance
    lengths = torch.tensor(frames, dtype=torch.float32) / longest
    with torch.no_grad():
        batched = model(batch, lengths)
        alone = torch.cat([model(u[None]) for u in utterances])
    assert torch.isfinite(batched).all()
    return (batched - alone).abs().max().item()


def test_padding_invariance_zero_padding():
    """An utterance alone and in a zero-padded batch: same embedding."""
    diff = _alone_vs_batch(small_model(), [97, 64, 31, 12, 3], 0.0)
    assert diff < 1e-5, diff


@pytest.mark.parametrize("padding_value", [1e4, float("nan"), float("inf")])
def test_padding_content_never_reaches_valid_frames(padding_value):
    """Whatever the padded frames hold, the embeddings do not change."""
    diff = _alone_vs_batch(small_model(), [50, 23, 7], padding_value)
    assert diff < 1e-5, diff


def test_single_frame_utterance():
    """One valid frame: finite (unbiased variance taken as 0), invariant."""
    model = small_model()
    diff = _alone_vs_batch(model, [20, 1], 0.0)
    assert diff < 1e-5, diff
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 1, 80))).all()


def test_masked_blocks_match_unmasked_on_valid_frames():
    """Block by block: a padded input with its mask equals the cut input."""
    torch.manual_seed(2)
    block = randomize_norms(
        Res2NetSEBlock(16, dilation=3, scale=4, se_channels=8)
    ).eval()
    se = SqueezeExcitation(16, bottleneck=4)
    pool = randomize_norms(ContextAttentiveStatsPool(16, 8)).eval()
    x = torch.randn(1, 16, 25)
    padded = torch.cat([x, torch.randn(1, 16, 9)], dim=2)
    mask = torch.arange(34).view(1, 1, 34) < 25
    with torch.no_grad():
        for module in (block, se):
            torch.testing.assert_close(
                module(padded, mask)[..., :25], module(x), atol=1e-5, rtol=0
            )
        torch.testing.assert_close(
            pool(padded, mask), pool(x), atol=1e-5, rtol=0
        )


def test_training_with_lengths_gives_finite_gradients():
    """Train mode with padding: plain batch norm, finite gradients."""
    model = small_model().train()
    feats = torch.randn(3, 40, 80, requires_grad=True)
    out = model(feats, torch.tensor([1.0, 0.5, 0.2]))
    out.square().sum().backward()
    assert torch.isfinite(feats.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_rejects_bad_inputs():
    """Wrong feature size, wrong rank, bad lengths, bad mask."""
    model = small_model()
    with pytest.raises(ValueError, match="feats must be"):
        model(torch.randn(2, 30, 40))
    with pytest.raises(ValueError, match="feats must be"):
        model(torch.randn(30, 80))
    with pytest.raises(ValueError, match="relative lengths"):
        model(torch.randn(2, 30, 80), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="mask must be"):
        model.pooling(torch.randn(2, 48, 30), torch.ones(2, 30).bool())
    with pytest.raises(ValueError, match="scale"):
        Res2NetSEBlock(4, scale=8)


# --------------------------------------------------------------------------
# FbankAug
# --------------------------------------------------------------------------


def _spans(mask_rows):
    """(start, width) of the True run of each row, (0, 0) if none."""
    spans = []
    for row in mask_rows:
        where = row.nonzero().flatten()
        if len(where) == 0:
            spans.append((0, 0))
            continue
        start, width = int(where[0]), len(where)
        assert int(where[-1]) == start + width - 1, "not one contiguous span"
        spans.append((start, width))
    return spans


def test_fbankaug_eval_mode_is_identity():
    """In eval mode the features are returned unchanged."""
    feats = torch.randn(2, 30, 80)
    assert FbankAug().eval()(feats) is feats


def test_fbankaug_one_time_and_one_freq_mask():
    """One time span < 5 frames and one band < 10 bins, zero, per item."""
    torch.manual_seed(3)
    feats = torch.rand(64, 50, 80) + 1.0
    before = feats.clone()
    out = FbankAug().train()(feats)
    torch.testing.assert_close(feats, before, atol=0, rtol=0)
    zero = out == 0
    time_rows = zero.all(dim=2)
    freq_rows = zero.all(dim=1)
    for start, width in _spans(time_rows):
        assert 0 <= width < 5 and start + width <= 50
    for start, width in _spans(freq_rows):
        assert 0 <= width < 10 and start + width <= 80
    expected = time_rows[:, :, None] | freq_rows[:, None, :]
    assert torch.equal(zero, expected)
    torch.testing.assert_close(out[~zero], feats[~zero], atol=0, rtol=0)
    assert time_rows.any() and freq_rows.any()


def test_fbankaug_positions_follow_the_authors_rule():
    """Starts uniform in [0, max(1, D - w_max)), D the valid length."""
    torch.manual_seed(4)
    aug = FbankAug(freq_mask_width=(2, 3), time_mask_width=(3, 4)).train()
    feats = torch.ones(2000, 100, 8)
    lengths = torch.full((2000,), 0.1)
    out = aug(feats, lengths)
    time_starts = {s for s, _ in _spans((out == 0).all(dim=2))}
    freq_starts = {s for s, _ in _spans((out == 0).all(dim=1))}
    # 10 valid frames, width 3: starts 0..6; 8 bins, width 2: starts 0..5.
    assert time_starts == set(range(7))
    assert freq_starts == set(range(6))


def test_fbankaug_time_mask_stays_in_valid_frames():
    """Padding never moves a time mask: it lies in the valid frames."""
    torch.manual_seed(5)
    frames = torch.randint(5, 60, (500,))
    lengths = frames / 100.0
    out = FbankAug().train()(torch.ones(500, 100, 80), lengths)
    for (start, width), n in zip(
        _spans((out == 0).all(dim=2)), frames.tolist(), strict=True
    ):
        assert width == 0 or start + width <= n


def test_fbankaug_rejects_bad_widths():
    """A width range must be 0 <= low < high."""
    with pytest.raises(ValueError, match="time_mask_width"):
        FbankAug(time_mask_width=(5, 5))
