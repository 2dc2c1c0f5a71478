"""Building blocks of UniPool's D3 stage (the layer-and-time convolutions).

Each class is one step of the UniPool backend (arXiv 2409.07770, spec
section 2.2). Tensors are channel-first ``[B, channels, L, T]``: ``L`` the
layers of the pretrained model, ``T`` the frames. Every block takes an
optional ``[B, T]`` frame mask (True at valid frames) and guarantees that
padded frames never influence valid ones.

Initialisation follows the authors: Kaiming-uniform (ReLU gain) for the
convolutions followed by a ReLU, Xavier-uniform for projections and gates,
zero biases; parameters keep the authors' shapes so that the fan-in and
fan-out the initialisers see are theirs.

Authors
 * unipool-sv developers 2026
"""

import torch
from torch import nn

from unipool_lobes.nnet.masking import masked_batch_norm, time_mask_like

__all__ = [
    "ChannelAttention",
    "DenseDilatedBlock",
    "DilatedConvUnit",
    "ExcitationBranch",
    "LayerReweightingGate",
    "UniPoolBlock",
    "init_kaiming_",
    "init_xavier_",
]


def init_kaiming_(module):
    """Kaiming-uniform (ReLU gain) weight and zero bias, in place.

    Arguments
    ---------
    module : torch.nn.Module
        A layer with ``weight`` and optionally ``bias``.

    Returns
    -------
    module : torch.nn.Module
        The same module.

    Example
    -------
    >>> layer = init_kaiming_(nn.Linear(4, 2))
    >>> bool((layer.bias == 0).all())
    True
    """
    nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return module


def init_xavier_(module):
    """Xavier-uniform weight and zero bias, in place.

    Arguments
    ---------
    module : torch.nn.Module
        A layer with ``weight`` and optionally ``bias``.

    Returns
    -------
    module : torch.nn.Module
        The same module.

    Example
    -------
    >>> layer = init_xavier_(nn.Linear(4, 2))
    >>> bool((layer.bias == 0).all())
    True
    """
    nn.init.xavier_uniform_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return module


class LayerReweightingGate(nn.Module):
    """Layer re-weighting and per-layer frame gate (the authors' VADscale).

    For each output layer ``i`` a learnable score vector ``s_i`` over the
    ``L`` input layers mixes them: ``x'_i = sum_l softmax(s_i)_l x_l``; the
    scores start one-hot at ``i``, so each layer starts as mostly itself.
    Then a frame gate per layer, ``g[b, i, t] = sigmoid(w_i . x'[b, :, i, t]
    + b_i)``, scales the frames; padded frames get gate 0 (and output 0).

    Arguments
    ---------
    channels : int
        Channels of the input (the block width, ``4C``).
    num_layers : int
        Number of layers ``L``.

    Example
    -------
    >>> gate = LayerReweightingGate(channels=8, num_layers=3)
    >>> x = torch.randn(2, 8, 3, 5)
    >>> mask = torch.tensor([[True] * 5, [True] * 4 + [False]])
    >>> y, g = gate(x, mask)
    >>> y.shape, g.shape
    (torch.Size([2, 8, 3, 5]), torch.Size([2, 3, 5]))
    >>> bool((g[1, :, 4] == 0).all()), bool((y[1, :, :, 4] == 0).all())
    (True, True)
    """

    def __init__(self, channels, num_layers):
        super().__init__()
        self.layer_scores = nn.Parameter(torch.eye(num_layers))
        # [L, channels] has the fans (channels, L) of the authors' [L, C, 1].
        self.gate_weight = nn.Parameter(torch.empty(num_layers, channels))
        self.gate_bias = nn.Parameter(torch.zeros(num_layers))
        nn.init.xavier_uniform_(self.gate_weight)

    def mixing_weights(self):
        """Returns the layer-mixing matrix ``softmax(scores)`` ``[L, L]``.

        Returns
        -------
        torch.Tensor
            Row ``i`` holds the weights of the input layers for output
            layer ``i``.
        """
        return self.layer_scores.softmax(dim=-1)

    def forward(self, x, mask=None):
        """Mixes the layers and gates the frames.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, channels, L, T]``.
        mask : torch.Tensor, optional
            ``[B, T]`` bool, True at valid frames.

        Returns
        -------
        gated : torch.Tensor
            ``[B, channels, L, T]``, zero at padded frames.
        gate : torch.Tensor
            ``[B, L, T]`` frame gates in ``[0, 1]``, zero at padded frames.
        """
        mixed = torch.matmul(self.mixing_weights().to(x.dtype), x)
        logits = torch.einsum("bclt,lc->blt", mixed, self.gate_weight)
        gate = torch.sigmoid(logits + self.gate_bias[:, None])
        gated = mixed * gate[:, None]
        if mask is not None:
            gate = gate.masked_fill(~mask[:, None, :], 0.0)
            # masked_fill, not a product, so that inf/nan padding vanishes.
            gated = gated.masked_fill(~time_mask_like(mask, gated), 0.0)
        return gated, gate


class DilatedConvUnit(nn.Module):
    """BatchNorm2d -> ReLU -> 3x3 dilated Conv2d with 'same' padding.

    The dilation applies to both the layer and the time axis. Padded frames
    are zeroed right before the convolution, so a valid frame next to the
    padding sees zeros, exactly as the 'same' zero padding at the end of
    the utterance would give if it were alone.

    Arguments
    ---------
    channels : int
        Input and output channels ``C``.
    dilation : int
        Dilation on both axes.
    kernel_size : int
        Odd kernel size on both axes (3 in UniPool).

    Example
    -------
    >>> unit = DilatedConvUnit(channels=4, dilation=2)
    >>> unit(torch.randn(2, 4, 6, 7)).shape
    torch.Size([2, 4, 6, 7])
    """

    def __init__(self, channels, dilation, kernel_size=3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.norm = nn.BatchNorm2d(channels)
        self.activation = nn.ReLU()
        self.conv = nn.Conv2d(
            channels,
            channels,
            kernel_size=kernel_size,
            dilation=dilation,
            padding=dilation * (kernel_size // 2),
        )
        init_kaiming_(self.conv)

    def forward(self, x, mask=None):
        """Applies the unit.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, C, L, T]``.
        mask : torch.Tensor, optional
            ``[B, T]`` bool, True at valid frames.

        Returns
        -------
        torch.Tensor
            ``[B, C, L, T]``.
        """
        hidden = masked_batch_norm(self.norm, x, mask)
        if mask is not None:
            # Masking before the ReLU (same result, as relu(0) = 0) lets the
            # ReLU output be the one tensor kept for the backward.
            hidden = hidden.masked_fill(~time_mask_like(mask, hidden), 0.0)
        return self.conv(self.activation(hidden))


class DenseDilatedBlock(nn.Module):
    """Dense multi-dilated block (the authors' D2 block).

    A 1x1 convolution gives ``y0`` (``C`` channels). Dense step ``k`` (1 to
    ``len(dilations)``) outputs ``y_k = sum_{j<k} Unit_{k,j}(y_j)``, where
    ``Unit_{k,j}`` is a :class:`DilatedConvUnit` with dilation
    ``dilations[j]``: the dilation follows the input, not the step. The
    output is ``[y0, y1, ...]`` concatenated on channels.

    Arguments
    ---------
    in_channels : int
        Channels of the input (``4C``).
    channels : int
        Channels ``C`` of each dense step.
    dilations : sequence of int
        One dilation per dense step (``(1, 2, 4)``).

    Example
    -------
    >>> block = DenseDilatedBlock(in_channels=16, channels=4)
    >>> block(torch.randn(2, 16, 6, 7)).shape
    torch.Size([2, 16, 6, 7])
    >>> block.out_channels
    16
    """

    def __init__(self, in_channels, channels, dilations=(1, 2, 4)):
        super().__init__()
        self.projection = init_kaiming_(
            nn.Conv2d(in_channels, channels, kernel_size=1)
        )
        self.steps = nn.ModuleList(
            nn.ModuleList(
                DilatedConvUnit(channels, dilations[j]) for j in range(k + 1)
            )
            for k in range(len(dilations))
        )
        self.out_channels = channels * (len(dilations) + 1)

    def forward(self, x, mask=None):
        """Applies the block.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, in_channels, L, T]``.
        mask : torch.Tensor, optional
            ``[B, T]`` bool, True at valid frames.

        Returns
        -------
        torch.Tensor
            ``[B, out_channels, L, T]``.
        """
        outputs = [self.projection(x)]
        for units in self.steps:
            # Step k has one unit per earlier output y_0 .. y_{k-1}.
            terms = zip(units, list(outputs), strict=True)
            step = None
            for unit, earlier in terms:
                term = unit(earlier, mask)
                step = term if step is None else step + term
            outputs.append(step)
        return torch.cat(outputs, dim=1)


class ExcitationBranch(nn.Module):
    """One squeeze-excitation branch: Linear -> ReLU -> BatchNorm -> Linear.

    The authors write it with 1x1 Conv2d on ``[B, C, 1, 1]``; on pooled
    vectors this is the same map (the converter reshapes the weights).

    Arguments
    ---------
    channels : int
        Input and output channels (``4C``).
    hidden_channels : int
        Bottleneck channels (``C``).

    Example
    -------
    >>> branch = ExcitationBranch(channels=16, hidden_channels=4)
    >>> branch(torch.randn(3, 16)).shape
    torch.Size([3, 16])
    """

    def __init__(self, channels, hidden_channels):
        super().__init__()
        self.squeeze = init_kaiming_(nn.Linear(channels, hidden_channels))
        self.activation = nn.ReLU()
        self.norm = nn.BatchNorm1d(hidden_channels)
        self.excite = init_xavier_(nn.Linear(hidden_channels, channels))

    def forward(self, pooled):
        """Maps pooled channel descriptors to excitation logits.

        Arguments
        ---------
        pooled : torch.Tensor
            ``[B, channels]``.

        Returns
        -------
        torch.Tensor
            ``[B, channels]`` logits (before the sigmoid).
        """
        return self.excite(self.norm(self.activation(self.squeeze(pooled))))


class ChannelAttention(nn.Module):
    """Channel attention from an average- and a max-pooled descriptor.

    ``scale = sigmoid(avg_branch(mean_{L,T} x) + max_branch(max_{L,T} x))``
    and the output is ``x * scale``. With a mask, the mean and the max are
    taken over valid frames only.

    Arguments
    ---------
    channels : int
        Channels of the input (``4C``).
    hidden_channels : int
        Bottleneck of each branch (``C``; the authors' ``bottleneck // 2``
        with ``bottleneck = 2C``).

    Example
    -------
    >>> attention = ChannelAttention(channels=16, hidden_channels=4)
    >>> attention(torch.randn(2, 16, 3, 5)).shape
    torch.Size([2, 16, 3, 5])
    """

    def __init__(self, channels, hidden_channels):
        super().__init__()
        self.avg_branch = ExcitationBranch(channels, hidden_channels)
        self.max_branch = ExcitationBranch(channels, hidden_channels)

    def forward(self, x, mask=None):
        """Scales the channels of ``x``.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, channels, L, T]``.
        mask : torch.Tensor, optional
            ``[B, T]`` bool, True at valid frames.

        Returns
        -------
        torch.Tensor
            ``[B, channels, L, T]``.
        """
        if mask is None:
            average = x.mean(dim=(2, 3))
            maximum = x.amax(dim=(2, 3))
        else:
            valid = time_mask_like(mask, x)
            count = mask.sum(dim=1, keepdim=True) * x.shape[2]
            average = x.masked_fill(~valid, 0.0).sum(dim=(2, 3)) / count
            maximum = x.masked_fill(~valid, float("-inf")).amax(dim=(2, 3))
        logits = self.avg_branch(average) + self.max_branch(maximum)
        return x * torch.sigmoid(logits)[:, :, None, None]


class UniPoolBlock(nn.Module):
    """One repetition of the D3 stage: gate, dense block, channel attention.

    ``g = LayerReweightingGate(x)``, ``f = ChannelAttention(D2(g))`` and the
    output is ``2 g + f`` (the authors wrap the block in a residual module
    and add the input again) or ``g + f`` with ``double_residual=False``.

    Arguments
    ---------
    channels : int
        Block width; must equal ``conv_channels * (len(dilations) + 1)``
        (``4C`` for three dilations).
    conv_channels : int
        Channels ``C`` of the dense steps.
    num_layers : int
        Number of layers ``L``.
    dilations : sequence of int
        Dilations of the dense steps.
    double_residual : bool
        True reproduces the authors' ``x_next = 2 x + f(x)``.

    Example
    -------
    >>> block = UniPoolBlock(16, conv_channels=4, num_layers=3)
    >>> y, gate = block(torch.randn(2, 16, 3, 5))
    >>> y.shape, gate.shape
    (torch.Size([2, 16, 3, 5]), torch.Size([2, 3, 5]))
    """

    def __init__(
        self,
        channels,
        conv_channels,
        num_layers,
        dilations=(1, 2, 4),
        double_residual=True,
    ):
        super().__init__()
        self.layer_gate = LayerReweightingGate(channels, num_layers)
        self.dense_block = DenseDilatedBlock(channels, conv_channels, dilations)
        if self.dense_block.out_channels != channels:
            raise ValueError(
                f"channels ({channels}) must equal conv_channels * "
                f"(len(dilations) + 1) = {self.dense_block.out_channels}"
            )
        self.channel_attention = ChannelAttention(channels, channels // 4)
        self.residual_scale = 2.0 if double_residual else 1.0

    def forward(self, x, mask=None):
        """Applies the block.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, channels, L, T]``.
        mask : torch.Tensor, optional
            ``[B, T]`` bool, True at valid frames.

        Returns
        -------
        output : torch.Tensor
            ``[B, channels, L, T]``.
        gate : torch.Tensor
            ``[B, L, T]`` frame gates of this block.
        """
        gated, gate = self.layer_gate(x, mask)
        dense = self.channel_attention(self.dense_block(gated, mask), mask)
        return self.residual_scale * gated + dense, gate
