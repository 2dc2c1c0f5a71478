"""Frame masks and batch normalisation that ignores padded frames.

The UniPool backend works on padded batches of utterances of different
lengths. This module turns SpeechBrain's relative lengths into a boolean frame
mask, and applies batch normalisation with training statistics computed over
the valid frames only, so that what is written in the padded frames never
reaches a valid one.

Authors
 * unipool-sv developers 2026
"""

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["frame_mask", "masked_batch_norm", "sync_group", "time_mask_like"]

# Relative lengths may exceed 1 by rounding error when they were computed as
# frames / max_frames in float32.
_LENGTH_TOLERANCE = 1e-4


def frame_mask(lengths, num_frames, batch_size=None):
    """Returns the boolean mask of valid frames, or None if all are valid.

    A relative length ``r`` (SpeechBrain's convention: the fraction of the
    longest item of the batch) covers ``round(r * num_frames)`` frames, at
    least one. Rounding, rather than comparing ``arange(T) < r * T``, keeps a
    length such as ``37 / 50`` from gaining a frame through float error.

    Arguments
    ---------
    lengths : torch.Tensor or None
        Relative lengths ``[B]`` in ``(0, 1]``. None means all frames valid.
    num_frames : int
        The number of frames ``T`` of the padded batch.
    batch_size : int, optional
        If given, ``lengths`` must hold this many values.

    Returns
    -------
    mask : torch.Tensor or None
        ``[B, T]`` bool on the device of ``lengths``, True at valid frames;
        None when every frame of every item is valid (so that callers can
        take their unmasked, faster path).

    Raises
    ------
    ValueError
        If ``lengths`` is not 1-D, has the wrong size, or holds values
        outside ``(0, 1]``.

    Example
    -------
    >>> frame_mask(torch.tensor([1.0, 0.5]), 4)
    tensor([[ True,  True,  True,  True],
            [ True,  True, False, False]])
    >>> print(frame_mask(torch.tensor([1.0, 1.0]), 4))
    None
    """
    if lengths is None:
        return None
    if lengths.dim() != 1:
        raise ValueError(
            f"lengths must be 1-D [batch], got shape {tuple(lengths.shape)}"
        )
    if batch_size is not None and lengths.shape[0] != batch_size:
        raise ValueError(
            f"lengths holds {lengths.shape[0]} values for a batch of "
            f"{batch_size}"
        )
    if torch.compiler.is_exporting() or torch.jit.is_tracing():
        # A graph (ONNX export) cannot branch on values: always a mask,
        # the same frames as below (an all-valid mask changes nothing).
        frames = torch.round(lengths.double() * num_frames)
        frames = frames.clamp(1, num_frames).long()
        steps = torch.arange(num_frames, device=lengths.device)
        return steps[None, :] < frames[:, None]
    # One device-to-host copy validates and counts in a single sync.
    relative = lengths.detach().to("cpu", torch.float64)
    bad = (relative <= 0) | (relative > 1 + _LENGTH_TOLERANCE)
    bad |= torch.isnan(relative)
    if bool(bad.any()):
        raise ValueError(
            "lengths must be relative lengths in (0, 1]; got "
            f"{relative[bad].tolist()} at batch indices "
            f"{bad.nonzero().flatten().tolist()}"
        )
    frames = torch.round(relative * num_frames).clamp(1, num_frames)
    if bool((frames == num_frames).all()):
        return None
    frames = frames.to(device=lengths.device, dtype=torch.long)
    steps = torch.arange(num_frames, device=lengths.device)
    return steps[None, :] < frames[:, None]


def time_mask_like(mask, x):
    """Reshapes a ``[B, T]`` frame mask to broadcast against ``x``.

    Time is the last axis of ``x`` and the batch the first; the mask gets
    singleton axes in between.

    Arguments
    ---------
    mask : torch.Tensor or None
        ``[B, T]`` bool frame mask.
    x : torch.Tensor
        ``[B, ..., T]`` tensor the mask will be applied to.

    Returns
    -------
    mask : torch.Tensor or None
        ``[B, 1, ..., 1, T]`` with ``x.dim()`` axes (None if mask is None).

    Example
    -------
    >>> mask = torch.tensor([[True, False]])
    >>> time_mask_like(mask, torch.zeros(1, 3, 5, 2)).shape
    torch.Size([1, 1, 1, 2])
    """
    if mask is None:
        return None
    return mask.view(mask.shape[0], *([1] * (x.dim() - 2)), mask.shape[1])


def sync_group(norm):
    """The process group to reduce a batch norm's statistics over, or None.

    Arguments
    ---------
    norm : torch.nn.modules.batchnorm._BatchNorm
        The normalisation: an ``nn.SyncBatchNorm`` or a norm whose class
        sets ``syncs_over_process_group`` synchronises, others do not.

    Returns
    -------
    torch.distributed.ProcessGroup or None
        The group, when one of more than one process is initialised.

    Example
    -------
    >>> sync_group(nn.BatchNorm1d(3)) is None
    True
    """
    # nn.SyncBatchNorm, or a norm that says it syncs over its process
    # group (unipool_lobes.training.batch_norm.ProcessGroupBatchNorm).
    syncs = isinstance(norm, nn.SyncBatchNorm) or getattr(
        norm, "syncs_over_process_group", False
    )
    if not syncs:
        return None
    if not (dist.is_available() and dist.is_initialized()):
        return None
    group = norm.process_group or dist.group.WORLD
    return group if dist.get_world_size(group) > 1 else None


def _all_reduce_sum(tensor, group):
    """Sums ``tensor`` over ``group`` in place (no-op without a group)."""
    if group is not None:
        dist.all_reduce(tensor, group=group)
    return tensor


class _MaskedBatchNormFunction(torch.autograd.Function):
    """Batch normalisation over valid positions, with a hand-written backward.

    Autograd through the masked statistics would keep three full-size
    tensors per normalisation; this keeps one (the normalised input), as
    PyTorch's own batch norm does. Padded positions output 0 and receive
    no gradient. Statistics and the sums of the backward are reduced over
    ``group`` (DDP), as ``nn.SyncBatchNorm`` does; the parameter gradients
    stay local (DDP averages them).
    """

    @staticmethod
    def forward(ctx, x, valid, weight, bias, eps, group):
        """Normalises ``x`` with the statistics of its valid positions."""
        reduce_dims = [0, *range(2, x.dim())]
        shape = [1, -1, *([1] * (x.dim() - 2))]
        count = valid.expand(x.shape[0], 1, *x.shape[2:]).sum().to(x.dtype)
        sums = x.masked_fill(~valid, 0).sum(reduce_dims)
        sums_and_count = _all_reduce_sum(torch.cat((sums, count[None])), group)
        sums, count = sums_and_count[:-1], sums_and_count[-1]
        mean = sums / count
        normalised = (x - mean.view(shape)).masked_fill_(~valid, 0)
        squares = _all_reduce_sum(normalised.pow(2).sum(reduce_dims), group)
        var = squares / count
        invstd = torch.rsqrt(var + eps)
        normalised.mul_(invstd.view(shape))
        output = normalised * weight.view(shape) + bias.view(shape)
        output.masked_fill_(~valid, 0)
        ctx.save_for_backward(normalised, valid, invstd, weight, count)
        ctx.group = group
        ctx.mark_non_differentiable(mean, var, count)
        return output, mean, var, count

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output, _grad_mean, _grad_var, _grad_count):
        """Gradient of batch normalisation over the valid positions."""
        normalised, valid, invstd, weight, count = ctx.saved_tensors
        reduce_dims = [0, *range(2, normalised.dim())]
        shape = [1, -1, *([1] * (normalised.dim() - 2))]
        grad = grad_output.masked_fill(~valid, 0)
        grad_bias = grad.sum(reduce_dims)
        grad_weight = (grad * normalised).sum(reduce_dims)
        sums = _all_reduce_sum(torch.cat((grad_bias, grad_weight)), ctx.group)
        mean_grad, mean_grad_normalised = (sums / count).chunk(2)
        grad_input = grad - mean_grad.view(shape)
        grad_input -= normalised * mean_grad_normalised.view(shape)
        grad_input *= (weight * invstd).view(shape)
        grad_input.masked_fill_(~valid, 0)
        return grad_input, None, grad_weight, grad_bias, None, None


def masked_batch_norm(norm, x, mask=None):
    """Applies a batch normalisation whose training statistics skip padding.

    ``norm`` is a plain ``nn.BatchNorm1d``/``nn.BatchNorm2d`` (or the
    ``nn.SyncBatchNorm`` that SpeechBrain's DDP turns it into), so its
    parameters, buffers and state-dict keys are PyTorch's. In evaluation,
    or in training without a mask, ``norm(x)`` runs unchanged. In training
    with a mask, the mean and (biased) variance are taken over the valid
    frames only, padded frames output 0, gradients are those of batch
    normalisation over the valid frames, and the running statistics are
    updated as PyTorch does (unbiased variance, ``momentum`` or cumulative
    average). Memory is that of PyTorch's batch norm (one saved tensor).

    Under DDP with ``nn.SyncBatchNorm`` the statistics (and the sums of the
    backward) are summed over the process group, and every training call
    takes this path, padded or not, so that all processes make the same
    collective calls.

    Arguments
    ---------
    norm : torch.nn.modules.batchnorm._BatchNorm
        The normalisation (channels on axis 1).
    x : torch.Tensor
        ``[B, C, ..., T]`` input, time last.
    mask : torch.Tensor, optional
        ``[B, T]`` bool, True at valid frames.

    Returns
    -------
    torch.Tensor
        The normalised tensor, same shape and dtype as ``x``.

    Example
    -------
    >>> norm = nn.BatchNorm1d(3)
    >>> x = torch.randn(2, 3, 5)
    >>> mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    >>> y = masked_batch_norm(norm, x, mask)
    >>> y.shape
    torch.Size([2, 3, 5])
    >>> x[1, :, 2:] = 1e6  # padded frames do not change valid outputs
    >>> torch.equal(masked_batch_norm(norm, x, mask), y)
    True
    """
    group = sync_group(norm)
    use_batch_stats = norm.training or not norm.track_running_stats
    if not use_batch_stats or (mask is None and group is None):
        return norm(x)
    if mask is None:
        mask = torch.ones(
            x.shape[0], x.shape[-1], dtype=torch.bool, device=x.device
        )
    # Half-precision inputs (autocast) are normalised in float32.
    values = x if x.dtype in (torch.float32, torch.float64) else x.float()
    if norm.affine:
        weight, bias = norm.weight, norm.bias
    else:
        weight = values.new_ones(x.shape[1])
        bias = values.new_zeros(x.shape[1])
    output, mean, var, count = _MaskedBatchNormFunction.apply(
        values, time_mask_like(mask, x), weight, bias, norm.eps, group
    )
    if norm.training and norm.track_running_stats:
        _update_running_stats(norm, mean, var, count)
    return output.to(x.dtype)


@torch.no_grad()
def _update_running_stats(norm, mean, var, count):
    """Updates running statistics as ``nn.BatchNorm`` does in training."""
    norm.num_batches_tracked.add_(1)
    if norm.momentum is None:
        factor = 1.0 / float(norm.num_batches_tracked)
    else:
        factor = norm.momentum
    unbiased = var * count / (count - 1).clamp(min=1)
    norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), factor)
    norm.running_var.lerp_(unbiased.to(norm.running_var.dtype), factor)
