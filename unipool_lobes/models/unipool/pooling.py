"""UniPool's two pooling stages: over the layer axis, then over time.

:class:`LayerAttentionPooling` squeezes the layer axis of ``[B, C, L, T]``
frame by frame (spec section 2.3); :class:`AttentiveStatisticsPooling`
squeezes time with an attention that sees the utterance's global mean and
standard deviation (spec section 2.4).

Authors
 * unipool-sv developers 2026
"""

import torch
from torch import nn
from torch.nn import functional as F

from unipool_lobes.models.unipool.blocks import init_xavier_
from unipool_lobes.nnet.masking import masked_batch_norm, time_mask_like

__all__ = ["AttentiveStatisticsPooling", "LayerAttentionPooling"]

# Variance floor under the square root of the attentive (weighted) std.
WEIGHTED_VARIANCE_FLOOR = 1e-4
# Variance floor of the global-context std: only keeps the gradient of the
# root finite on a constant channel (the authors have none).
CONTEXT_VARIANCE_FLOOR = 1e-12
# Choices of AttentiveStatisticsPooling's context_std and dropout_mode.
CONTEXT_STDS = ("biased", "unbiased")
DROPOUT_MODES = ("weights", "frames")
_FP32 = torch.float32


class LayerAttentionPooling(nn.Module):
    """Attention over layers, then the maximum over layers, per frame.

    ``BatchNorm2d -> 1x1 Conv2d`` (no bias) to ``H * K`` channels, read as
    ``H`` heads of ``K`` channels. Per frame and head, the average and the
    maximum over the ``K`` channels give two ``L``-vectors; each goes
    through the head's MLP ``L -> L // 2 (ReLU) -> L`` (shared by the two
    paths); ``sigmoid(sum)`` (dropout in training) scales the ``L`` layers
    of that head. The maximum over the layer axis gives ``[B, H * K, T]``,
    then ``1x1 Conv1d`` (no bias) ``-> out_channels`` and ``BatchNorm1d``.

    Every step but the batch normalisations is per frame; these take the
    frame mask for their training statistics.

    Arguments
    ---------
    in_channels : int
        Channels of the input (``4C * num_blocks``).
    out_channels : int
        Output channels (``4C``); also ``H * K``.
    num_layers : int
        Number of layers ``L`` (at least 2).
    num_heads : int
        Number of heads ``H``; must divide ``out_channels``.
    dropout : float
        Dropout on the layer attention in training.

    Example
    -------
    >>> pool = LayerAttentionPooling(16, 8, num_layers=4, num_heads=2)
    >>> out, attention = pool(torch.randn(2, 16, 4, 5))
    >>> out.shape, attention.shape
    (torch.Size([2, 8, 5]), torch.Size([2, 2, 4, 5]))
    """

    def __init__(
        self, in_channels, out_channels, num_layers, num_heads=4, dropout=0.1
    ):
        super().__init__()
        if out_channels % num_heads != 0:
            raise ValueError(
                f"num_heads ({num_heads}) must divide out_channels "
                f"({out_channels})"
            )
        if num_layers < 2:
            raise ValueError(
                f"num_layers must be at least 2 (the layer MLP has "
                f"num_layers // 2 hidden units), got {num_layers}"
            )
        self.num_heads = num_heads
        hidden = num_layers // 2
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.input_projection = init_xavier_(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        )
        # Shapes [H, L, L//2] and [H, L//2, L] as the authors', so that the
        # initialisers see the same fans.
        self.hidden_weight = nn.Parameter(
            torch.empty(num_heads, num_layers, hidden)
        )
        self.hidden_bias = nn.Parameter(torch.zeros(num_heads, hidden))
        self.score_weight = nn.Parameter(
            torch.empty(num_heads, hidden, num_layers)
        )
        self.score_bias = nn.Parameter(torch.zeros(num_heads, num_layers))
        nn.init.kaiming_uniform_(self.hidden_weight, nonlinearity="relu")
        nn.init.xavier_uniform_(self.score_weight)
        self.dropout = nn.Dropout(dropout)
        self.output_projection = init_xavier_(
            nn.Conv1d(out_channels, out_channels, kernel_size=1, bias=False)
        )
        self.output_norm = nn.BatchNorm1d(out_channels)

    def _layer_mlp(self, pooled):
        """Per-head MLP over the layer axis: ``[..., H, L, T]`` in and out."""
        hidden = torch.einsum("...hlt,hlm->...hmt", pooled, self.hidden_weight)
        hidden = F.relu(hidden + self.hidden_bias[:, :, None])
        scores = torch.einsum("...hmt,hml->...hlt", hidden, self.score_weight)
        return scores + self.score_bias[:, :, None]

    def forward(self, x, mask=None):
        """Pools the layer axis.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, in_channels, L, T]``.
        mask : torch.Tensor, optional
            ``[B, T]`` bool, True at valid frames (batch statistics only).

        Returns
        -------
        pooled : torch.Tensor
            ``[B, out_channels, T]``.
        attention : torch.Tensor
            ``[B, H, L, T]`` layer attention (sigmoid, before dropout).
        """
        heads = self.input_projection(
            masked_batch_norm(self.input_norm, x, mask)
        )
        batch, channels, layers, frames = heads.shape
        heads = heads.view(batch, self.num_heads, -1, layers, frames)
        pooled = torch.stack((heads.mean(dim=2), heads.amax(dim=2)))
        attention = torch.sigmoid(self._layer_mlp(pooled).sum(dim=0))
        weighted = heads * self.dropout(attention)[:, :, None]
        pooled = weighted.amax(dim=3).reshape(batch, channels, frames)
        pooled = self.output_projection(pooled)
        return masked_batch_norm(self.output_norm, pooled, mask), attention


class AttentiveStatisticsPooling(nn.Module):
    """Attentive statistics pooling over time, with global context.

    The attention sees ``[x, mean, std]`` (the utterance's masked mean and
    biased standard deviation broadcast over time): ``Conv1d(3C -> C/2)
    -> ReLU -> BatchNorm1d -> Conv1d(C/2 -> C)``, masked softmax over time
    (dropout in training), then the attentive mean and standard deviation
    ``sqrt(max(sum w x^2 - mu^2, 1e-4))`` are concatenated.

    It differs from SpeechBrain's ECAPA ``AttentiveStatisticsPooling``
    (no tanh there, a floor of 1e-12, no dropout, attention width not tied
    to the input), hence its own class. All statistics are computed in
    float32 at least (float64 input stays float64), also under autocast:
    ``E[x^2] - mu^2`` cancels badly in half precision.

    Two options serve the LAP authors' ASTP (their ``astp.py``), whose
    attention context holds the unbiased std and whose training dropout
    removes whole frames from the softmax; the defaults are UniPool's.

    Arguments
    ---------
    channels : int
        Input channels ``C`` (``4 * conv_channels`` in UniPool).
    dropout : float
        Dropout rate in training (see ``dropout_mode``).
    context_std : str
        The std of the attention context: ``"biased"`` (divided by the
        number of valid frames ``N``; UniPool's) or ``"unbiased"`` (by
        ``N - 1``, or by 1 when ``N = 1``; the LAP authors').
    dropout_mode : str
        ``"weights"``: element-wise inverted dropout on the attention
        weights after the softmax (UniPool's). ``"frames"``: one Bernoulli
        draw per utterance and frame, shared by all channels, removes the
        frame from the softmax (its logit set to the dtype's lowest
        value, no rescaling; the LAP authors'). Padded frames stay out
        even when every valid frame of an utterance is dropped: the
        weights are then uniform over the valid frames, as the authors'
        are over all frames. Either acts while ``self.dropout`` is in
        training mode.

    Example
    -------
    >>> pool = AttentiveStatisticsPooling(channels=8)
    >>> x = torch.randn(2, 8, 6)
    >>> mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    >>> pool(x, mask).shape
    torch.Size([2, 16])
    """

    def __init__(
        self,
        channels,
        dropout=0.1,
        context_std="biased",
        dropout_mode="weights",
    ):
        super().__init__()
        if context_std not in CONTEXT_STDS:
            raise ValueError(
                f"context_std must be one of {CONTEXT_STDS}, got "
                f"{context_std!r}"
            )
        if dropout_mode not in DROPOUT_MODES:
            raise ValueError(
                f"dropout_mode must be one of {DROPOUT_MODES}, got "
                f"{dropout_mode!r}"
            )
        self.context_std = context_std
        self.dropout_mode = dropout_mode
        # PyTorch default initialisation here, as in the authors' code.
        self.attention_hidden = nn.Conv1d(channels * 3, channels // 2, 1)
        self.attention_activation = nn.ReLU()
        self.attention_norm = nn.BatchNorm1d(channels // 2)
        self.attention_output = nn.Conv1d(channels // 2, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        """Pools the time axis.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, C, T]``.
        mask : torch.Tensor, optional
            ``[B, T]`` bool, True at valid frames.

        Returns
        -------
        torch.Tensor
            ``[B, 2C]``: attentive mean then attentive std, float32.
        """
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._pool(x.to(torch.promote_types(x.dtype, _FP32)), mask)

    def _pool(self, x, mask):
        """Float32 (or float64) body of :meth:`forward`."""
        frames = x.shape[-1]
        valid = time_mask_like(mask, x)
        unbiased = self.context_std == "unbiased"
        if mask is None:
            mean = x.mean(dim=-1, keepdim=True)
            if unbiased:
                squares = (x - mean).pow(2).sum(dim=-1, keepdim=True)
                var = squares / max(frames - 1, 1)
            else:
                var = (x - mean).pow(2).mean(dim=-1, keepdim=True)
        else:
            x = x.masked_fill(~valid, 0.0)
            count = valid.sum(dim=-1, keepdim=True)
            mean = x.sum(dim=-1, keepdim=True) / count
            centred = (x - mean).masked_fill(~valid, 0.0)
            if unbiased:
                count = (count - 1).clamp(min=1)
            var = centred.pow(2).sum(dim=-1, keepdim=True) / count
        std = var.clamp(min=CONTEXT_VARIANCE_FLOOR).sqrt()
        context = torch.cat(
            (x, mean.expand(-1, -1, frames), std.expand(-1, -1, frames)), dim=1
        )
        hidden = self.attention_activation(self.attention_hidden(context))
        hidden = masked_batch_norm(self.attention_norm, hidden, mask)
        logits = self.attention_output(hidden)
        if self.dropout_mode == "frames":
            return self._statistics(x, self._drop_frames(logits, valid))
        if mask is not None:
            logits = logits.masked_fill(~valid, torch.finfo(logits.dtype).min)
        return self._statistics(x, self.dropout(logits.softmax(dim=-1)))

    def _drop_frames(self, logits, valid):
        """Softmax over time without dropped (training) or padded frames."""
        rate = self.dropout.p
        if self.dropout.training and rate > 0:
            batch, _, frames = logits.shape
            draws = torch.rand((batch, 1, frames), device=logits.device)
            dropped = draws < rate
            logits = logits.masked_fill(dropped, torch.finfo(logits.dtype).min)
        if valid is not None:
            # Below the dropped frames' value: padding stays out even when
            # every valid frame is dropped.
            logits = logits.masked_fill(~valid, float("-inf"))
        return logits.softmax(dim=-1)

    def _statistics(self, x, weights):
        """Attentive mean and std of ``x`` ``[B, C, T]``: ``[B, 2C]``."""
        attentive_mean = (x * weights).sum(dim=-1)
        second_moment = (x.pow(2) * weights).sum(dim=-1)
        attentive_var = second_moment - attentive_mean.pow(2)
        attentive_std = attentive_var.clamp(min=WEIGHTED_VARIANCE_FLOOR).sqrt()
        return torch.cat((attentive_mean, attentive_std), dim=1)
