"""Exact CNN features of a padded batch in one pass (masked group norm).

The CNN feature encoder of ``feat_extract_norm="group"`` models (wav2vec 2.0,
HuBERT and WavLM base) normalises the first layer's output with a GroupNorm
whose statistics span the time axis, so on a padded batch the padding shifts
them. Every other operation is local in time: a valid output frame of a
convolution (one that the model's conv-length formula counts) sees only
valid input frames, and so, by induction, only the utterance's true samples.

:func:`masked_cnn_features` therefore runs HF's own conv layers once on the
padded batch and replaces the GroupNorm by one whose mean and variance are
taken, per utterance and per group, over that utterance's valid frames only
(same biased variance, same ``eps``, same affine). The valid frames then hold
what the utterance alone gives; the others are set to zero at the end.
The lengths are tensors throughout (masks and sums, no ``.item()``, no
``torch.unique``), so the function traces and exports to ONNX with dynamic
batch and length axes.

Authors
 * unipool-sv developers 2026
"""

import torch
from torch import nn

__all__ = ["conv_output_lengths", "masked_cnn_features"]

# Reduced precision inputs get their statistics in float32 (as GroupNorm's
# kernels accumulate them).
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def conv_output_lengths(conv, lengths):
    """Valid output frames of a ``Conv1d`` for valid input lengths.

    PyTorch's output-size formula (padding, dilation, kernel, stride) on a
    tensor of lengths, so it stays in the graph when traced.

    Arguments
    ---------
    conv : torch.nn.Conv1d
        The convolution.
    lengths : torch.Tensor
        ``[B]`` valid input lengths (long).

    Returns
    -------
    torch.Tensor
        ``[B]`` valid output lengths (long; negative ones clamped to 0).

    Example
    -------
    >>> conv = nn.Conv1d(1, 4, kernel_size=10, stride=5)
    >>> conv_output_lengths(conv, torch.tensor([400, 10, 9]))
    tensor([79,  1,  0])
    """
    span = conv.dilation[0] * (conv.kernel_size[0] - 1) + 1
    padded = lengths + 2 * conv.padding[0] - span
    out = torch.div(padded, conv.stride[0], rounding_mode="floor") + 1
    return out.clamp(min=0)


def masked_cnn_features(feature_extractor, wav, sample_lens):
    """CNN features of a padded batch, each as its utterance alone gives.

    Drives the layers of HF's feature encoder (``conv_layers[i].conv``,
    ``.layer_norm``, ``.activation``): a layer with a GroupNorm is
    normalised over each utterance's valid frames only; the others
    (no norm, or the per-frame LayerNorm of ``"layer"`` CNNs) run as they
    are.

    Arguments
    ---------
    feature_extractor : torch.nn.Module
        The ``feature_extractor`` of a HF wav2vec2, HuBERT or WavLM model.
    wav : torch.Tensor
        ``[B, S]`` waveforms, padded on the right (the padding's values,
        even non-finite ones, do not matter).
    sample_lens : torch.Tensor
        ``[B]`` lengths in samples.

    Returns
    -------
    torch.Tensor
        ``[B, T, C]`` features, T by the model's conv-length formula for
        S; frames after each utterance's own length are zero.

    Raises
    ------
    TypeError
        For a conv layer whose norm is neither GroupNorm nor LayerNorm.

    Example
    -------
    >>> from unipool_lobes.frontends.local_models import build_model
    >>> encoder = build_model("wav2vec2", "tiny").eval().feature_extractor
    >>> wav = torch.randn(2, 8000)
    >>> lens = torch.tensor([8000, 3000])
    >>> with torch.no_grad():
    ...     batched = masked_cnn_features(encoder, wav, lens)
    ...     alone = encoder(wav[1:, :3000]).transpose(1, 2)
    >>> batched.shape, alone.shape
    (torch.Size([2, 24, 16]), torch.Size([1, 9, 16]))
    >>> bool((batched[1, :9] - alone[0]).abs().max() < 1e-5)
    True
    >>> bool(batched[1, 9:].eq(0).all())
    True
    """
    hidden = wav[:, None]
    if not torch.is_tensor(sample_lens):
        sample_lens = torch.as_tensor(sample_lens)
    lengths = sample_lens.to(device=wav.device, dtype=torch.long)
    for layer in feature_extractor.conv_layers:
        lengths = conv_output_lengths(layer.conv, lengths)
        norm = getattr(layer, "layer_norm", None)
        if isinstance(norm, nn.GroupNorm):
            hidden = layer.conv(hidden)
            hidden = _masked_group_norm(norm, hidden, lengths)
            hidden = layer.activation(hidden)
        elif norm is None or isinstance(norm, nn.LayerNorm):
            hidden = layer(hidden)
        else:
            raise TypeError(
                f"masked_cnn_features: conv layer {type(layer).__name__} "
                f"has a {type(norm).__name__}; only GroupNorm (masked) and "
                "LayerNorm or none (local in time) are supported"
            )
    padding = ~_frame_mask(lengths, hidden.shape[-1])
    return hidden.masked_fill(padding[:, None, :], 0).transpose(1, 2)


def _frame_mask(lengths, num_frames):
    """``[B]`` lengths -> ``[B, num_frames]`` bool mask, True = valid."""
    positions = torch.arange(num_frames, device=lengths.device)
    return positions[None, :] < lengths[:, None]


def _masked_group_norm(norm, hidden, lengths):
    """``norm`` (a GroupNorm) on ``[B, C, T]`` with valid-frame statistics.

    The sums over time are ``torch.sum`` reductions (pairwise/cascade, as
    accurate as GroupNorm's own), on the masked values and then on the
    masked squared deviations from the mean (two passes, no cancellation).
    Without autograd they reuse one buffer and normalise in place, so the
    peak is two ``[B, C, T]`` tensors, as for the plain GroupNorm.
    """
    batch, channels, num_frames = hidden.shape
    groups = norm.num_groups
    per_group = channels // groups
    stats_dtype = (
        torch.float32 if hidden.dtype in _LOW_PRECISION else hidden.dtype
    )
    values = hidden.to(stats_dtype)
    in_place = not (torch.is_grad_enabled() and values.requires_grad)
    # Filled, not multiplied: a non-finite padded frame times 0 is NaN.
    padding = ~_frame_mask(lengths, num_frames)[:, None, :]
    # Frames per group; an empty utterance gets count 1 (its frames are
    # zeroed anyway) rather than a division by zero.
    count = (lengths.clamp(min=1) * per_group).to(stats_dtype)[:, None]
    buffer = values.masked_fill(padding, 0)
    mean = buffer.reshape(batch, groups, -1).sum(-1) / count
    channel_mean = mean.repeat_interleave(per_group, dim=1)[:, :, None]
    if in_place:
        buffer.copy_(values).sub_(channel_mean).masked_fill_(padding, 0)
        buffer.square_()
    else:
        buffer = (values - channel_mean).masked_fill(padding, 0).square()
    var = buffer.reshape(batch, groups, -1).sum(-1) / count
    del buffer
    scale = torch.rsqrt(var + norm.eps).repeat_interleave(per_group, dim=1)
    if norm.affine:
        scale = scale * norm.weight.to(stats_dtype)
    scale = scale[:, :, None]
    shift = -channel_mean * scale
    if norm.affine:
        shift = shift + norm.bias.to(stats_dtype)[None, :, None]
    if in_place:
        # values is the conv's output (or its float32 copy): ours to reuse.
        return values.mul_(scale).add_(shift).to(hidden.dtype)
    return torch.addcmul(shift, values, scale).to(hidden.dtype)
