"""Tests of the UniPool backend lobe and its conversion from the authors' code.

The parity tests hold a small re-implementation of the authors' backend in
their layout ``[B, D, L, T]`` and with their module names (so that its state
dict has their keys), written from the spec, not copied.

Authors
 * unipool-sv developers 2026
"""

import time

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from unipool_lobes.models.unipool.blocks import DenseDilatedBlock, UniPoolBlock
from unipool_lobes.models.unipool.model import (
    UniPool,
    authors_hparams_from_state_dict,
    convert_authors_state_dict,
    convert_to_authors_state_dict,
)
from unipool_lobes.nnet.masking import frame_mask, masked_batch_norm

SMALL = {
    "input_size": 24,
    "num_layers": 4,
    "conv_channels": 8,
    "lin_neurons": 16,
}


# --------------------------------------------------------------------------
# A reference of the authors' backend, their layout and key names
# --------------------------------------------------------------------------


class RefLayerScore(nn.Module):
    """One output layer's score vector over the input layers."""

    def __init__(self, num_layers):
        super().__init__()
        self.score_vector = nn.Parameter(torch.randn(num_layers))


class RefVad(nn.Module):
    """Layer re-weighting and frame gate, ``[B, C, L, T]``."""

    def __init__(self, channels, num_layers):
        super().__init__()
        self.superb = nn.ModuleList(
            RefLayerScore(num_layers) for _ in range(num_layers)
        )
        self.weight = nn.Parameter(torch.randn(num_layers, channels, 1) * 0.1)
        self.bias = nn.Parameter(torch.randn(num_layers, 1, 1) * 0.1)

    def forward(self, x, mask):
        mixed = []
        for score in self.superb:  # one output layer at a time
            weights = score.score_vector.softmax(0)
            mixed.append((x * weights[None, None, :, None]).sum(dim=2))
        x = torch.stack(mixed, dim=2)
        gate = torch.zeros(x.shape[0], x.shape[2], x.shape[3])
        for layer in range(x.shape[2]):
            w = self.weight[layer, :, 0]
            logit = torch.einsum("bct,c->bt", x[:, :, layer], w)
            gate[:, layer] = logit + self.bias[layer, 0, 0]
        gate = gate.masked_fill(~mask[:, None, :], -1e30).sigmoid()
        return x * gate[:, None]


class RefMultiDilated(nn.Module):
    """Sum over earlier outputs of BN -> ReLU -> dilated conv."""

    def __init__(self, channels, dilations):
        super().__init__()
        self.mdconv = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                nn.Conv2d(channels, channels, 3, dilation=d, padding="same"),
            )
            for d in dilations
        )

    def forward(self, earlier):
        return sum(
            conv(y) for conv, y in zip(self.mdconv, earlier, strict=True)
        )


class RefD2(nn.Module):
    """Dense multi-dilated block."""

    def __init__(self, in_channels, channels, dilations=(1, 2, 4)):
        super().__init__()
        self.projection = nn.Conv2d(in_channels, channels, 1)
        self.dense = nn.ModuleList(
            RefMultiDilated(channels, dilations[: k + 1])
            for k in range(len(dilations))
        )

    def forward(self, x):
        outputs = [self.projection(x)]
        for step in self.dense:
            outputs.append(step(outputs))
        return torch.cat(outputs, dim=1)


def _ref_excitation(pool, channels, hidden):
    return nn.Sequential(
        pool,
        nn.Conv2d(channels, hidden, 1),
        nn.ReLU(),
        nn.BatchNorm2d(hidden),
        nn.Conv2d(hidden, channels, 1),
    )


class RefChannelAttention(nn.Module):
    """Average- and max-pooled squeeze-excitation."""

    def __init__(self, channels, hidden):
        super().__init__()
        self.avg_se = _ref_excitation(nn.AdaptiveAvgPool2d(1), channels, hidden)
        self.max_se = _ref_excitation(nn.AdaptiveMaxPool2d(1), channels, hidden)

    def forward(self, x):
        return x * torch.sigmoid(self.avg_se(x) + self.max_se(x))


class RefResidual(nn.Module):
    """``x + m(x)``."""

    def __init__(self, module):
        super().__init__()
        self.m = module

    def forward(self, x):
        return x + self.m(x)


class RefD3(nn.Module):
    """Input projection and D3 blocks."""

    def __init__(self, in_channels, channels, num_layers, num_blocks):
        super().__init__()
        width = 4 * channels
        self.projection = nn.Sequential(
            nn.Conv2d(in_channels, width, 1), nn.BatchNorm2d(width)
        )
        self.vadnet = nn.ModuleList(
            RefVad(width, num_layers) for _ in range(num_blocks)
        )
        self.densenet = nn.ModuleList(
            RefResidual(
                nn.Sequential(
                    RefD2(width, channels),
                    RefChannelAttention(width, channels),
                )
            )
            for _ in range(num_blocks)
        )

    def forward(self, x, mask):
        x = self.projection(x)
        outputs = []
        for vad, dense in zip(self.vadnet, self.densenet, strict=True):
            x = vad(x, mask)
            x = x + dense(x)  # the residual module adds x once more
            outputs.append(x)
        return torch.cat(outputs, dim=1)


class RefLayerPool(nn.Module):
    """Layer attention pooling, one frame at a time conceptually."""

    def __init__(self, in_channels, out_channels, num_layers, heads, dropout):
        super().__init__()
        self.heads = heads
        m = num_layers // 2
        self.in_projection = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        )
        self.W1 = nn.Parameter(torch.randn(heads, num_layers, m) * 0.3)
        self.b1 = nn.Parameter(torch.randn(heads, 1, m) * 0.1)
        self.W2 = nn.Parameter(torch.randn(heads, m, num_layers) * 0.3)
        self.b2 = nn.Parameter(torch.randn(heads, 1, num_layers) * 0.1)
        self.out_projection = nn.Sequential(
            nn.Conv1d(out_channels, out_channels, 1, bias=False),
            nn.BatchNorm1d(out_channels),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = self.in_projection(x)
        b, c, layers, t = x.shape
        # frames as batch: [B*T, H, K, L]
        frames = x.permute(0, 3, 1, 2).reshape(b * t, self.heads, -1, layers)
        avg = frames.mean(dim=2, keepdim=True)  # [BT, H, 1, L]
        mx = frames.max(dim=2, keepdim=True).values

        def mlp(v):
            hidden = F.relu(torch.matmul(v, self.W1) + self.b1)
            return torch.matmul(hidden, self.W2) + self.b2

        attention = self.dropout(torch.sigmoid(mlp(avg) + mlp(mx)))
        pooled = (frames * attention).max(dim=3).values  # [BT, H, K]
        pooled = pooled.reshape(b, t, c).transpose(1, 2)
        return self.out_projection(pooled)


class RefTimePool(nn.Module):
    """Attentive statistics pooling with global context and embedding."""

    def __init__(self, channels, embedding, dropout):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(3 * channels, channels // 2, 1),
            nn.ReLU(),
            nn.BatchNorm1d(channels // 2),
            nn.Conv1d(channels // 2, channels, 1),
        )
        self.dropout = nn.Dropout(dropout)
        self.attn_norm = nn.BatchNorm1d(2 * channels)
        self.out_proj = nn.Linear(2 * channels, embedding)
        self.out_norm = nn.BatchNorm1d(embedding)

    def forward(self, x, mask):
        m = mask[:, None, :].float()
        n = m.sum(-1, keepdim=True)
        mu = (x * m).sum(-1, keepdim=True) / n
        sd = (((x - mu) ** 2 * m).sum(-1, keepdim=True) / n).sqrt()
        t = x.shape[-1]
        stats = torch.cat([x, mu.expand(-1, -1, t), sd.expand(-1, -1, t)], 1)
        logits = self.attention(stats).masked_fill(m == 0, -1e30)
        w = self.dropout(logits.softmax(-1))
        amu = (x * w).sum(-1)
        asd = ((x * x * w).sum(-1) - amu**2).clamp(min=1e-4).sqrt()
        pooled = self.attn_norm(torch.cat([amu, asd], 1))
        return self.out_norm(self.out_proj(pooled))


class RefBackend(nn.Module):
    """The authors' ``encoder`` ModuleDict and its forward on [B, D, L, T]."""

    def __init__(
        self,
        input_size,
        num_layers,
        conv_channels=128,
        num_blocks=1,
        lin_neurons=192,
        dropout=0.1,
    ):
        super().__init__()
        width = 4 * conv_channels
        self.encoder = nn.ModuleDict(
            {
                "d3net": RefD3(
                    input_size, conv_channels, num_layers, num_blocks
                ),
                "l_pool": RefLayerPool(
                    width * num_blocks, width, num_layers, 4, dropout
                ),
                "t_pool": RefTimePool(width, lin_neurons, dropout),
            }
        )

    def forward(self, x, mask):
        x = self.encoder["d3net"](x, mask)
        x = self.encoder["l_pool"](x)
        return self.encoder["t_pool"](x, mask)


def _randomise_(model, seed=0):
    """Random batch-norm affine/statistics and biases, in place."""
    generator = torch.Generator().manual_seed(seed)

    def rand(like, low, high):
        noise = torch.rand(like.shape, generator=generator)
        return low + (high - low) * noise

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.copy_(rand(module.weight, 0.5, 1.5))
                module.bias.copy_(rand(module.bias, -0.3, 0.3))
                module.running_mean.copy_(rand(module.running_mean, -0.3, 0.3))
                module.running_var.copy_(rand(module.running_var, 0.5, 2.0))
                module.num_batches_tracked.fill_(7)
            elif getattr(module, "bias", None) is not None:
                module.bias.copy_(rand(module.bias, -0.1, 0.1))
    return model


def _hidden_states(batch, layers, frames, size, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, layers, frames, size, generator=generator)


def _as_theirs(hidden_states, num_layers):
    """Our ``[B, L+1, T, D]`` to their ``[B, D, L, T]`` (layers 1..L)."""
    return hidden_states[:, 1 : num_layers + 1].permute(0, 3, 1, 2)


# --------------------------------------------------------------------------
# Parameter count, shapes, options
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "input_size, num_layers, expected",
    [(768, 12, 2_869_476), (1024, 24, 3_008_936)],
)
def test_parameter_count_matches_the_authors(input_size, num_layers, expected):
    model = UniPool(input_size=input_size, num_layers=num_layers)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_output_shape_and_layer_selection():
    torch.manual_seed(0)
    model = UniPool(**SMALL).eval()
    hidden = _hidden_states(3, 5, 9, 24)
    assert model(hidden).shape == (3, 1, 16)
    # An explicit, unordered selection reads the layers it names.
    picked = UniPool(layers=(3, 0, 2, 4), **SMALL).eval()
    picked.load_state_dict(model.state_dict())
    reordered = hidden[:, [0, 3, 0, 2, 4]]  # default reads indices 1..4
    torch.testing.assert_close(picked(hidden), model(reordered))


def test_bad_inputs_raise_clear_errors():
    model = UniPool(**SMALL)
    with pytest.raises(ValueError, match="layer index 4"):
        model(torch.randn(2, 4, 9, 24))  # CNN output missing
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        model(torch.randn(2, 5, 9, 24), torch.tensor([1.0, 1.5]))
    with pytest.raises(ValueError, match="input_size=24"):
        model(torch.randn(2, 5, 9, 32))
    with pytest.raises(ValueError, match="batch of 2"):
        model(torch.randn(2, 5, 9, 24), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="num_layers=4"):
        UniPool(layers=(1, 2), **SMALL)
    with pytest.raises(ValueError, match="at least 2"):
        UniPool(input_size=8, num_layers=1, conv_channels=4)


def test_frame_mask_rounds_relative_lengths():
    lengths = torch.tensor([37 / 50, 1.0, 0.001])
    mask = frame_mask(lengths.float(), 50)
    assert mask.sum(dim=1).tolist() == [37, 50, 1]


def test_dense_block_dilation_follows_its_input():
    block = DenseDilatedBlock(16, 4, dilations=(1, 2, 4))
    for step, units in enumerate(block.steps):
        assert len(units) == step + 1
        assert [u.conv.dilation for u in units] == [
            (d, d) for d in (1, 2, 4)[: step + 1]
        ]


def test_double_residual_option():
    torch.manual_seed(0)
    block = UniPoolBlock(16, conv_channels=4, num_layers=3).eval()
    single = UniPoolBlock(16, 4, 3, double_residual=False).eval()
    single.load_state_dict(block.state_dict())
    x = torch.randn(2, 16, 3, 5)
    gated, _ = block.layer_gate(x)
    double_out, _ = block(x)
    single_out, _ = single(x)
    torch.testing.assert_close(double_out - single_out, gated)


def test_deterministic_initialisation_per_seed():
    def build(seed):
        torch.manual_seed(seed)
        return UniPool(**SMALL).state_dict()

    first, again, other = build(1), build(1), build(2)
    assert all(torch.equal(first[k], again[k]) for k in first)
    weight = "blocks.0.dense_block.steps.0.0.conv.weight"
    assert not torch.equal(first[weight], other[weight])
    # the authors' initial state: one-hot layer scores, zero gate biases
    assert torch.equal(first["blocks.0.layer_gate.layer_scores"], torch.eye(4))
    assert not first["blocks.0.layer_gate.gate_bias"].any()


# --------------------------------------------------------------------------
# Masking: padding never changes an embedding
# --------------------------------------------------------------------------


def _padded_batch(lengths, num_layers, size, pad_value_scale, seed=0):
    """Utterances of ``lengths`` frames, padded with random junk."""
    frames = max(lengths)
    hidden = _hidden_states(len(lengths), num_layers + 1, frames, size, seed)
    junk = pad_value_scale * torch.randn(hidden.shape)
    for i, length in enumerate(lengths):
        hidden[i, :, length:] = junk[i, :, length:]
    relative = torch.tensor(lengths, dtype=torch.float32) / frames
    return hidden, relative


@pytest.mark.parametrize(
    "config",
    [
        {"input_size": 768, "num_layers": 12},
        {"input_size": 768, "num_layers": 12, "num_blocks": 2},
        {"input_size": 1024, "num_layers": 24},
    ],
    ids=["base", "two_blocks", "large"],
)
def test_alone_and_padded_in_a_batch_give_the_same_embedding(config):
    torch.manual_seed(0)
    model = _randomise_(UniPool(**config)).eval()
    lengths = [8, 19, 13]
    hidden, relative = _padded_batch(
        lengths, config["num_layers"], config["input_size"], 1e3
    )
    with torch.no_grad():
        batched = model(hidden, relative)
        for i, length in enumerate(lengths):
            alone = model(hidden[i : i + 1, :, :length])
            diff = (alone - batched[i : i + 1]).abs().max()
            assert diff < 1e-5, (i, float(diff))
        # Without the mask the padding does change the short utterances.
        unmasked = model(hidden, None)
    assert (unmasked[0] - batched[0]).abs().max() > 1e-2


def test_padding_content_is_irrelevant_in_training_mode():
    config = {**SMALL, "num_blocks": 2, "dropout": 0.0}
    lengths = [5, 12, 9]
    outputs, states = [], []
    for scale in (0.0, 1e4):
        torch.manual_seed(0)
        model = _randomise_(UniPool(**config)).train()
        hidden, relative = _padded_batch(lengths, 4, 24, scale)
        outputs.append(model(hidden, relative))
        states.append(model.state_dict())
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-5)
    for key, value in states[0].items():
        torch.testing.assert_close(value, states[1][key], msg=key)


def _valid_positions(x, mask):
    """``[B, C, L, T]`` -> ``[N, C]``, the valid positions only."""
    valid = mask[:, None, :].expand(x.shape[0], x.shape[2], x.shape[3])
    return x.permute(0, 2, 3, 1)[valid]


def test_masked_batch_norm_uses_valid_frames_only():
    torch.manual_seed(0)
    masked, reference = nn.BatchNorm2d(3), nn.BatchNorm1d(3)
    x = torch.randn(2, 3, 4, 6, requires_grad=True)
    mask = torch.tensor([[True] * 6, [True] * 2 + [False] * 4])
    weights = torch.randn(2, 3, 4, 6)
    out = masked_batch_norm(masked, x, mask)
    (out * weights).masked_fill(~mask[:, None, None], 0).sum().backward()
    flat = _valid_positions(x.detach(), mask).requires_grad_()
    expected = reference(flat)
    (expected * _valid_positions(weights, mask)).sum().backward()
    torch.testing.assert_close(_valid_positions(out, mask), expected)
    torch.testing.assert_close(_valid_positions(x.grad, mask), flat.grad)
    torch.testing.assert_close(masked.weight.grad, reference.weight.grad)
    torch.testing.assert_close(masked.bias.grad, reference.bias.grad)
    torch.testing.assert_close(masked.running_mean, reference.running_mean)
    torch.testing.assert_close(masked.running_var, reference.running_var)


def test_masked_batch_norm_backward_passes_gradcheck():
    torch.manual_seed(0)
    norm = nn.BatchNorm2d(2).double().train()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True] * 4, [True, False, False, False]])
    assert torch.autograd.gradcheck(
        lambda x, w, b: masked_batch_norm(norm, x, mask),
        (x, norm.weight, norm.bias),
    )


def test_sync_batch_norm_conversion_keeps_the_model_working():
    """SpeechBrain's DDP converts every BatchNorm to SyncBatchNorm."""
    torch.manual_seed(0)
    config = {**SMALL, "dropout": 0.0}
    model = _randomise_(UniPool(**config)).train()
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(_copy_model(model, config))
    hidden, relative = _padded_batch([5, 9], 4, 24, 1.0)
    torch.testing.assert_close(
        synced(hidden, relative), model(hidden, relative)
    )
    torch.testing.assert_close(synced(hidden), model(hidden))


def _copy_model(model, config):
    copy = UniPool(**config).train()
    copy.load_state_dict(model.state_dict())
    return copy


def _distributed_worker(rank, init_file, x, mask, weights, out_dir):
    """Normalises this rank's half of the batch with a SyncBatchNorm."""
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    try:
        torch.manual_seed(0)
        norm = nn.SyncBatchNorm(3).train()
        part = slice(2 * rank, 2 * rank + 2)
        local = x[part].clone().requires_grad_()
        # rank 0 has no padding and passes no mask, rank 1 is padded
        local_mask = None if rank == 0 else mask[part]
        out = masked_batch_norm(norm, local, local_mask)
        (out * weights[part]).masked_fill(
            ~mask[part][:, None, None], 0
        ).sum().backward()
        torch.save(
            {
                "out": out.detach(),
                "grad": local.grad,
                "running_var": norm.running_var,
            },
            f"{out_dir}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_masked_batch_norm_reduces_statistics_across_processes(tmp_path):
    import torch.multiprocessing as mp

    torch.manual_seed(0)
    x = torch.randn(4, 3, 2, 5)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[2, 3:] = False
    mask[3, 1:] = False
    weights = torch.randn(4, 3, 2, 5)
    context = mp.start_processes(
        _distributed_worker,
        args=(tmp_path / "init", x, mask, weights, tmp_path),
        nprocs=2,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + 60
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("distributed workers hung")
    parts = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    reference = nn.BatchNorm2d(3).train()
    whole = x.clone().requires_grad_()
    expected = masked_batch_norm(reference, whole, mask)
    (expected * weights).masked_fill(~mask[:, None, None], 0).sum().backward()
    out = torch.cat([part["out"] for part in parts])
    grad = torch.cat([part["grad"] for part in parts])
    torch.testing.assert_close(
        _valid_positions(out, mask), _valid_positions(expected, mask)
    )
    torch.testing.assert_close(
        _valid_positions(grad, mask), _valid_positions(whole.grad, mask)
    )
    for part in parts:
        torch.testing.assert_close(part["running_var"], reference.running_var)


# --------------------------------------------------------------------------
# Gradients and introspection
# --------------------------------------------------------------------------


@pytest.mark.parametrize("with_padding", [False, True])
def test_gradients_reach_every_parameter(with_padding):
    torch.manual_seed(0)
    model = UniPool(input_size=768, num_layers=12, num_blocks=2).train()
    hidden = _hidden_states(3, 13, 12, 768)
    lengths = torch.tensor([1.0, 0.5, 0.75]) if with_padding else None
    embeddings = model(hidden, lengths)
    target = torch.randn(embeddings.shape)
    (embeddings * target).sum().backward()
    silent = [
        name
        for name, p in model.named_parameters()
        if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not silent
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_introspection_is_kept_only_on_request():
    torch.manual_seed(0)
    model = UniPool(num_blocks=2, **SMALL).train()
    hidden, relative = _padded_batch([4, 10], 4, 24, 1.0)
    model(hidden, relative)
    assert model.layer_attention_weights is None and model.layer_gates is None
    with model.keeping_attention():
        model(hidden, relative)
    assert model.keep_attention is False
    weights, gates = model.layer_attention_weights, model.layer_gates
    assert weights.shape == (2, 4, 4, 10)  # [B, H, L, T]
    assert len(gates) == 2 and gates[0].shape == (2, 4, 10)
    assert not weights.requires_grad and not gates[1].requires_grad
    assert ((weights >= 0) & (weights <= 1)).all()
    assert not weights[0, :, :, 4:].any() and weights[0, :, :, :4].all()
    assert not gates[0][0, :, 4:].any() and gates[0][0, :, :4].all()
    model(hidden, relative)  # no longer kept
    assert model.layer_gates is None
    mixing = model.layer_mixing_weights()
    assert len(mixing) == 2
    torch.testing.assert_close(mixing[0].sum(dim=1), torch.ones(4))


def test_encode_runs_in_eval_mode_and_float32_on_cpu():
    torch.manual_seed(0)
    model = _randomise_(UniPool(**SMALL)).train()
    hidden, relative = _padded_batch([6, 11], 4, 24, 1.0)
    encoded = model.encode(hidden, relative)
    assert model.training and encoded.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(encoded, model.eval()(hidden, relative))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_with_padding_stays_close_to_float32(dtype):
    torch.manual_seed(0)
    model = _randomise_(UniPool(**SMALL)).eval()
    hidden, relative = _padded_batch([6, 11], 4, 24, 1.0)
    with torch.no_grad():
        reference = model(hidden, relative)
        with torch.autocast("cpu", dtype=dtype):
            low = model(hidden, relative)
    assert torch.isfinite(low).all()
    cosine = F.cosine_similarity(low.float(), reference, dim=-1)
    assert (cosine > 0.99).all(), cosine


# --------------------------------------------------------------------------
# The authors' checkpoints
# --------------------------------------------------------------------------

PARITY_CONFIGS = [
    {"input_size": 768, "num_layers": 12},
    {"input_size": 40, "num_layers": 5, "conv_channels": 8, "num_blocks": 2},
]


@pytest.mark.parametrize("config", PARITY_CONFIGS, ids=["base", "small2"])
def test_converted_authors_weights_give_their_embeddings(config):
    torch.manual_seed(0)
    reference = _randomise_(RefBackend(**config), seed=1).eval()
    model = UniPool(**config).eval()
    theirs = reference.state_dict()
    defaults = {"conv_channels": 128, "num_blocks": 1}
    defaults.update(attention_heads=4, lin_neurons=192)
    assert authors_hparams_from_state_dict(theirs) == defaults | config
    model.load_state_dict(convert_authors_state_dict(theirs), strict=True)
    hidden = _hidden_states(
        2, config["num_layers"] + 1, 17, config["input_size"]
    )
    all_valid = torch.ones(2, 17, dtype=torch.bool)
    with torch.no_grad():
        expected = reference(
            _as_theirs(hidden, config["num_layers"]), all_valid
        )
        ours = model(hidden)
    assert expected.abs().mean() > 0.1  # not a degenerate comparison
    torch.testing.assert_close(ours[:, 0], expected, atol=2e-5, rtol=1e-4)


def test_training_step_matches_the_authors_batch_norm():
    torch.manual_seed(0)
    config = {
        "input_size": 40,
        "num_layers": 5,
        "conv_channels": 8,
        "dropout": 0.0,
    }
    reference = _randomise_(RefBackend(**config), seed=2).train()
    model = UniPool(**config).train()
    model.load_state_dict(convert_authors_state_dict(reference.state_dict()))
    hidden = _hidden_states(3, 6, 10, 40)
    all_valid = torch.ones(3, 10, dtype=torch.bool)
    expected = reference(_as_theirs(hidden, 5), all_valid)
    torch.testing.assert_close(model(hidden)[:, 0], expected)
    updated = convert_authors_state_dict(reference.state_dict())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, updated[key], msg=key)


def test_conversion_accepts_whole_model_and_round_trips():
    torch.manual_seed(0)
    config = {"input_size": 40, "num_layers": 5, "conv_channels": 8}
    backend = RefBackend(**config).state_dict()
    whole = {f"module.{k}": v for k, v in backend.items()}
    whole["module.backbone.encoder.layers.0.weight"] = torch.zeros(1)
    whole["module.aam_softmax.weight"] = torch.zeros(1)
    whole["module.span_mask_kernel"] = torch.ones(1, 1, 3)
    ours = convert_authors_state_dict(whole)
    model = UniPool(**config)
    model.load_state_dict(ours, strict=True)
    with pytest.raises(ValueError, match="aam_softmax"):
        convert_authors_state_dict(whole, ignore_non_backend=False)
    back = convert_to_authors_state_dict(ours, prefix="encoder.")
    assert set(back) == set(backend)
    for key, value in backend.items():
        assert torch.equal(back[key], value), key


def test_conversion_lists_missing_and_unknown_keys():
    config = {"input_size": 40, "num_layers": 5, "conv_channels": 8}
    backend = RefBackend(**config).state_dict()
    broken = dict(backend)
    del broken["encoder.l_pool.W2"]
    broken["encoder.d3net.extra.weight"] = torch.zeros(1)
    with pytest.raises(KeyError) as error:
        convert_authors_state_dict(broken)
    assert "l_pool.W2" in str(error.value)
    assert "d3net.extra.weight" in str(error.value)
    with pytest.raises(KeyError, match="d3net.vadnet.0"):
        convert_authors_state_dict({"foo.weight": torch.zeros(1)})
    # num_batches_tracked is optional, as in old PyTorch checkpoints
    old = {k: v for k, v in backend.items() if "num_batches" not in k}
    UniPool(**config).load_state_dict(convert_authors_state_dict(old))


def test_spanout_is_off_by_default_and_drops_spans_when_on():
    """Span-out (the authors' ``spanout_``) changes training embeddings
    only when asked, and never evaluation ones."""
    from unipool_lobes.nnet.spanout import span_out

    torch.manual_seed(0)
    hidden = torch.randn(3, 5, 40, 16)
    lengths = torch.tensor([1.0, 0.75, 0.5])
    plain = UniPool(input_size=16, num_layers=4, conv_channels=8, dropout=0)
    spanned = UniPool(
        input_size=16,
        num_layers=4,
        conv_channels=8,
        dropout=0,
        spanout_prob=1.0,
        span_start_prob=0.2,
    )
    spanned.load_state_dict(plain.state_dict())
    plain.eval(), spanned.eval()
    assert torch.equal(plain(hidden, lengths), spanned(hidden, lengths))
    torch.manual_seed(1)
    a = plain.train()(hidden, lengths)
    torch.manual_seed(1)
    b = spanned.train()(hidden, lengths)
    assert not torch.allclose(a, b, atol=1e-3)

    # The kept frames are the valid, undropped ones, in order.
    frames = torch.arange(40.0).reshape(1, 1, 40, 1).expand(3, 2, 40, 1)
    out, new_lengths = span_out(
        frames,
        lengths,
        utterance_prob=1.0,
        start_prob=0.2,
        generator=torch.Generator().manual_seed(3),
    )
    counts = torch.round(new_lengths * out.shape[2]).long()
    for row, valid in enumerate((40, 30, 20)):
        kept = out[row, 0, : counts[row], 0]
        assert torch.all(kept[1:] > kept[:-1])
        assert kept.max() < valid
        assert 0 < counts[row] < valid
        assert torch.all(out[row, :, counts[row] :] == 0)
        assert torch.equal(out[row, 0], out[row, 1])
