"""The UniPool authors' ECAPA-TDNN baseline, padding-invariant.

The UniPool authors' ECAPA-TDNN baseline follows the community
implementation of TaoRuijie (github.com/TaoRuijie/ECAPA-TDNN), which
differs from SpeechBrain's ``ECAPA_TDNN`` lobe in several places: every
convolution is followed by ReLU and then batch normalisation (not the
other way round); the Res2Net split passes its *last* group through
unchanged (SpeechBrain's passes the first); the squeeze-excitation has no
normalisation; the three Res2Net blocks take dense inputs
(``x + x1 + x2``); the attention of the pooling has a Tanh after its batch
normalisation; and the pooled statistics and the embedding are both batch
normalised. With 512 channels and 80 input features the encoder has
6,978,176 parameters.

:class:`ECAPATDNN` takes SpeechBrain-style ``[B, T, F]`` features and
relative lengths, and gives an utterance the same embedding alone or in a
zero-padded batch (in eval mode): padded frames are zeroed before every
convolution whose kernel spans time, so that the convolution sees the
zeros its 'same' padding gives at the true end; the squeeze-excitation
mean, the global context statistics, the attention softmax and the
weighted statistics use the valid frames only. Training-mode batch
normalisation uses plain batch statistics (training crops are not
padded). :class:`FbankAug` is the authors' SpecAugment-style masking.

The authors' front end (pre-emphasis, an 80-coefficient MFCC without
log-mels, L2-normalised over the coefficients) is not part of this module.

Authors
 * unipool-sv developers 2026
"""

import torch
from torch import nn
from torch.nn import functional as F

from unipool_lobes.nnet.masking import frame_mask

__all__ = [
    "ContextAttentiveStatsPool",
    "ECAPATDNN",
    "FbankAug",
    "Res2NetSEBlock",
    "SqueezeExcitation",
]

# The floor of the variances under the square roots of the pooling.
_VARIANCE_FLOOR = 1e-4


def _zero_padding(x, mask):
    """``x`` with its padded frames set to 0 (``x`` itself if no mask)."""
    if mask is None:
        return x
    # where, not a product: padded frames may hold inf or NaN.
    return torch.where(mask, x, 0.0)


def _time_mean(x, mask):
    """Mean over the last axis, over the valid frames only."""
    if mask is None:
        return x.mean(dim=-1, keepdim=True)
    count = mask.sum(dim=-1, keepdim=True).to(x.dtype)
    return _zero_padding(x, mask).sum(dim=-1, keepdim=True) / count


def _check_mask(mask, x):
    """Raises ValueError unless ``mask`` is None or a ``[B, 1, T]`` bool."""
    if mask is None:
        return
    expected = (x.shape[0], 1, x.shape[-1])
    if mask.dtype != torch.bool or tuple(mask.shape) != expected:
        raise ValueError(
            f"mask must be a bool tensor of shape {expected}, got "
            f"{mask.dtype} of shape {tuple(mask.shape)}"
        )


class SqueezeExcitation(nn.Module):
    """Channel gates from the time average: conv 1x1, ReLU, conv 1x1, sigmoid.

    Arguments
    ---------
    channels : int
        Number of input and output channels.
    bottleneck : int
        Number of channels between the two 1x1 convolutions.

    Example
    -------
    >>> se = SqueezeExcitation(16, bottleneck=4)
    >>> x = torch.randn(2, 16, 30)
    >>> mask = torch.ones(2, 1, 30, dtype=torch.bool)
    >>> mask[1, :, 20:] = False  # the second utterance has 20 frames
    >>> se(x, mask).shape
    torch.Size([2, 16, 30])
    """

    def __init__(self, channels, bottleneck=128):
        super().__init__()
        self.squeeze = nn.Conv1d(channels, bottleneck, kernel_size=1)
        self.excite = nn.Conv1d(bottleneck, channels, kernel_size=1)

    def forward(self, x, mask=None):
        """Returns ``x`` scaled by its channel gates.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, C, T]`` input.
        mask : torch.Tensor, optional
            ``[B, 1, T]`` bool, True at valid frames; None means all valid.

        Returns
        -------
        torch.Tensor
            ``[B, C, T]`` gated input.
        """
        _check_mask(mask, x)
        gates = torch.sigmoid(
            self.excite(F.relu(self.squeeze(_time_mean(x, mask))))
        )
        return x * gates


class Res2NetSEBlock(nn.Module):
    """TaoRuijie's Res2Net bottleneck with squeeze-excitation and a residual.

    A 1x1 convolution, ReLU and batch norm; the result is split into
    ``scale`` groups of ``width = channels // scale`` channels. Group 0
    goes through a dilated convolution, ReLU and batch norm; each next
    group ``i < scale - 1`` is added to the previous group's output before
    its own convolution, ReLU and batch norm; the last group is passed
    through unchanged. The concatenated groups go through a 1x1
    convolution, ReLU, batch norm and the squeeze-excitation, and the input
    is added.

    Arguments
    ---------
    channels : int
        Number of input and output channels.
    kernel_size : int
        Kernel size of the dilated convolutions (odd).
    dilation : int
        Dilation of the dilated convolutions.
    scale : int
        Number of Res2Net groups (at least 2).
    se_channels : int
        Bottleneck size of the squeeze-excitation.

    Raises
    ------
    ValueError
        If ``scale < 2``, ``channels < scale`` or ``kernel_size`` is even.

    Example
    -------
    >>> block = Res2NetSEBlock(16, dilation=2, scale=4, se_channels=8)
    >>> block(torch.randn(2, 16, 30)).shape
    torch.Size([2, 16, 30])
    """

    def __init__(
        self, channels, kernel_size=3, dilation=1, scale=8, se_channels=128
    ):
        super().__init__()
        if scale < 2 or channels < scale:
            raise ValueError(
                f"need 2 <= scale <= channels, got scale={scale} and "
                f"channels={channels}"
            )
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.width = channels // scale
        hidden = self.width * scale
        self.conv_in = nn.Conv1d(channels, hidden, kernel_size=1)
        self.norm_in = nn.BatchNorm1d(hidden)
        padding = (kernel_size // 2) * dilation
        self.res2_convs = nn.ModuleList(
            nn.Conv1d(
                self.width,
                self.width,
                kernel_size=kernel_size,
                dilation=dilation,
                padding=padding,
            )
            for _ in range(scale - 1)
        )
        self.res2_norms = nn.ModuleList(
            nn.BatchNorm1d(self.width) for _ in range(scale - 1)
        )
        self.conv_out = nn.Conv1d(hidden, channels, kernel_size=1)
        self.norm_out = nn.BatchNorm1d(channels)
        self.se = SqueezeExcitation(channels, se_channels)

    def forward(self, x, mask=None):
        """Returns the block output.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, C, T]`` input.
        mask : torch.Tensor, optional
            ``[B, 1, T]`` bool, True at valid frames; None means all valid.

        Returns
        -------
        torch.Tensor
            ``[B, C, T]`` output.
        """
        _check_mask(mask, x)
        groups = torch.split(
            self.norm_in(F.relu(self.conv_in(x))), self.width, dim=1
        )
        outputs = []
        for i, (conv, norm) in enumerate(
            zip(self.res2_convs, self.res2_norms, strict=True)
        ):
            hidden = groups[i] if i == 0 else outputs[-1] + groups[i]
            outputs.append(norm(F.relu(conv(_zero_padding(hidden, mask)))))
        outputs.append(groups[-1])
        out = self.norm_out(F.relu(self.conv_out(torch.cat(outputs, dim=1))))
        return self.se(out, mask) + x


class ContextAttentiveStatsPool(nn.Module):
    """Attentive mean and standard deviation with global context.

    Every frame is scored from itself, the utterance mean and the
    utterance standard deviation (``[x, mean, std]``, 3 ``C`` channels):
    conv 1x1, ReLU, batch norm, Tanh, conv 1x1 to ``C`` channels, softmax
    over time. The context standard deviation is the square root of the
    *unbiased* variance over the valid frames (divided by ``n - 1``, as
    ``torch.var`` in the authors' code, which sees no padding), floored at
    1e-4; for a single frame the variance is taken as 0 (``torch.var``
    would give NaN). The output is the weighted mean and the weighted
    standard deviation ``sqrt(max(E_w[x^2] - mu^2, 1e-4))``.

    Arguments
    ---------
    channels : int
        Number of input channels ``C``.
    attention_channels : int
        Number of channels of the attention's hidden layer.

    Example
    -------
    >>> pool = ContextAttentiveStatsPool(12, attention_channels=4)
    >>> pool(torch.randn(2, 12, 30)).shape
    torch.Size([2, 24])
    """

    def __init__(self, channels, attention_channels=256):
        super().__init__()
        self.attention_in = nn.Conv1d(
            3 * channels, attention_channels, kernel_size=1
        )
        self.attention_norm = nn.BatchNorm1d(attention_channels)
        self.attention_out = nn.Conv1d(
            attention_channels, channels, kernel_size=1
        )

    def forward(self, x, mask=None):
        """Returns the pooled statistics.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, C, T]`` frame features.
        mask : torch.Tensor, optional
            ``[B, 1, T]`` bool, True at valid frames; None means all valid.

        Returns
        -------
        torch.Tensor
            ``[B, 2 C]``: the weighted mean, then the weighted standard
            deviation.
        """
        _check_mask(mask, x)
        frames = x.shape[-1]
        x = _zero_padding(x, mask)
        mean = _time_mean(x, mask)
        if mask is None and frames > 1:
            variance = torch.var(x, dim=-1, keepdim=True)
        else:
            if mask is None:
                count = torch.full_like(mean, frames)
            else:
                count = mask.sum(dim=-1, keepdim=True).to(x.dtype)
            squares = _zero_padding((x - mean) ** 2, mask)
            variance = squares.sum(dim=-1, keepdim=True) / (count - 1).clamp(
                min=1
            )
        std = torch.sqrt(variance.clamp(min=_VARIANCE_FLOOR))
        context = torch.cat((x, mean.expand_as(x), std.expand_as(x)), dim=1)
        scores = self.attention_norm(F.relu(self.attention_in(context)))
        scores = self.attention_out(torch.tanh(scores))
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        mu = torch.sum(x * weights, dim=-1)
        second = torch.sum(x**2 * weights, dim=-1)
        sigma = torch.sqrt((second - mu**2).clamp(min=_VARIANCE_FLOOR))
        return torch.cat((mu, sigma), dim=1)


class ECAPATDNN(nn.Module):
    """The UniPool authors' (TaoRuijie's) ECAPA-TDNN speaker encoder.

    A convolution of kernel 5 (ReLU, batch norm); three
    :class:`Res2NetSEBlock` with dilations 2, 3 and 4, block ``k`` taking
    the sum of the first convolution's output and the outputs of the blocks
    before it; a 1x1 convolution of the concatenated block outputs to
    ``mfa_channels`` (ReLU); :class:`ContextAttentiveStatsPool`; batch norm
    of the statistics, a linear layer to ``embedding_size`` and batch norm.
    The defaults are the authors' (``C = 512``: 6,978,176 parameters).

    Without ``lengths`` the computation is the authors'. With ``lengths``
    an utterance gets the same embedding in eval mode as when embedded
    alone (see the module docstring for how).

    Arguments
    ---------
    input_size : int
        Number of input features ``F``.
    channels : int
        Channels ``C`` of the first convolution and the Res2Net blocks.
    dilations : sequence of int
        Dilation of each Res2Net block (one block per value).
    scale : int
        Number of Res2Net groups of each block.
    se_channels : int
        Bottleneck size of the squeeze-excitations.
    mfa_channels : int
        Output channels of the 1x1 convolution over the block outputs.
    attention_channels : int
        Hidden channels of the pooling's attention.
    embedding_size : int
        Size of the embedding.

    Example
    -------
    >>> model = ECAPATDNN(
    ...     input_size=20,
    ...     channels=16,
    ...     scale=4,
    ...     se_channels=8,
    ...     mfa_channels=24,
    ...     attention_channels=8,
    ...     embedding_size=12,
    ... )
    >>> feats = torch.randn(2, 50, 20)
    >>> model(feats, torch.tensor([1.0, 0.6])).shape
    torch.Size([2, 1, 12])
    """

    def __init__(
        self,
        input_size=80,
        channels=512,
        dilations=(2, 3, 4),
        scale=8,
        se_channels=128,
        mfa_channels=1536,
        attention_channels=256,
        embedding_size=192,
    ):
        super().__init__()
        self.input_size = input_size
        self.input_conv = nn.Conv1d(input_size, channels, 5, padding=2)
        self.input_norm = nn.BatchNorm1d(channels)
        self.blocks = nn.ModuleList(
            Res2NetSEBlock(
                channels,
                kernel_size=3,
                dilation=dilation,
                scale=scale,
                se_channels=se_channels,
            )
            for dilation in dilations
        )
        self.mfa = nn.Conv1d(
            len(dilations) * channels, mfa_channels, kernel_size=1
        )
        self.pooling = ContextAttentiveStatsPool(
            mfa_channels, attention_channels
        )
        self.stats_norm = nn.BatchNorm1d(2 * mfa_channels)
        self.embedding = nn.Linear(2 * mfa_channels, embedding_size)
        self.embedding_norm = nn.BatchNorm1d(embedding_size)

    def forward(self, feats, lengths=None):
        """Returns the embeddings.

        Arguments
        ---------
        feats : torch.Tensor
            ``[B, T, F]`` features.
        lengths : torch.Tensor, optional
            ``[B]`` lengths relative to ``T``, in (0, 1]; None means all
            frames valid.

        Returns
        -------
        torch.Tensor
            ``[B, 1, embedding_size]`` embeddings.

        Raises
        ------
        ValueError
            If ``feats`` is not ``[B, T, input_size]`` or a length is
            outside (0, 1].
        """
        if feats.dim() != 3 or feats.shape[-1] != self.input_size:
            raise ValueError(
                f"feats must be [batch, frames, {self.input_size}], got "
                f"shape {tuple(feats.shape)}"
            )
        batch, frames, _ = feats.shape
        mask = frame_mask(lengths, frames, batch)
        if mask is not None:
            mask = mask.unsqueeze(1)
        x = _zero_padding(feats.transpose(1, 2), mask)
        x = self.input_norm(F.relu(self.input_conv(x)))
        total = x
        outputs = []
        for block in self.blocks:
            outputs.append(block(total, mask))
            total = total + outputs[-1]
        x = F.relu(self.mfa(torch.cat(outputs, dim=1)))
        x = self.stats_norm(self.pooling(x, mask))
        return self.embedding_norm(self.embedding(x)).unsqueeze(1)


class FbankAug(nn.Module):
    """The authors' SpecAugment: one time and one frequency mask, set to 0.

    In training mode each utterance gets one time mask of ``w_t`` frames,
    ``w_t`` uniform in ``[time_mask_width[0], time_mask_width[1])``, then
    one frequency mask of ``w_f`` bins, ``w_f`` uniform in
    ``freq_mask_width``. As in the authors' code, a mask starts at a
    position uniform in ``[0, max(1, D - w_max))``, where ``w_max`` is the
    widest mask of that axis in the batch and ``D`` the axis size; for time
    ``D`` is the utterance's own number of valid frames (from ``lengths``),
    so the padding of a batch does not change where the masks can land,
    and a time mask lies within the valid frames whenever the utterance has
    at least ``w_max`` of them. In eval mode the features are returned as they
    are. The draws use torch's global random number generator.

    Arguments
    ---------
    freq_mask_width : tuple of int
        ``(low, high)`` range of the frequency mask width (high excluded).
    time_mask_width : tuple of int
        ``(low, high)`` range of the time mask width (high excluded).

    Example
    -------
    >>> aug = FbankAug()
    >>> feats = torch.ones(2, 100, 80)
    >>> out = aug(feats, torch.tensor([1.0, 0.5]))
    >>> out.shape
    torch.Size([2, 100, 80])
    >>> bool(feats.eq(1).all())  # a new tensor: the input is unchanged
    True
    >>> aug.eval()(feats) is feats
    True
    """

    def __init__(self, freq_mask_width=(0, 10), time_mask_width=(0, 5)):
        super().__init__()
        for name, (low, high) in (
            ("freq_mask_width", freq_mask_width),
            ("time_mask_width", time_mask_width),
        ):
            if not 0 <= low < high:
                raise ValueError(
                    f"{name} must be (low, high) with 0 <= low < high, got "
                    f"{(low, high)}"
                )
        self.freq_mask_width = tuple(freq_mask_width)
        self.time_mask_width = tuple(time_mask_width)

    @staticmethod
    def _axis_mask(sizes, axis_size, width_range, device):
        """``[B, axis_size]`` bool mask of one random span per row."""
        batch = sizes.shape[0]
        widths = torch.randint(*width_range, (batch,), device=device)
        high = (sizes - widths.max()).clamp(min=1)
        starts = (torch.rand(batch, device=device) * high).long()
        # floor(u * high) may round up to high in float arithmetic.
        starts = torch.minimum(starts, high - 1)
        steps = torch.arange(axis_size, device=device)
        return (steps >= starts[:, None]) & (steps < (starts + widths)[:, None])

    def forward(self, feats, lengths=None):
        """Returns the masked features (a new tensor) in training mode.

        Arguments
        ---------
        feats : torch.Tensor
            ``[B, T, F]`` features.
        lengths : torch.Tensor, optional
            ``[B]`` lengths relative to ``T``, in (0, 1]; None means all
            frames valid.

        Returns
        -------
        torch.Tensor
            ``[B, T, F]``; ``feats`` itself in eval mode.

        Raises
        ------
        ValueError
            If ``feats`` is not 3-D or a length is outside (0, 1].
        """
        if feats.dim() != 3:
            raise ValueError(
                "feats must be [batch, frames, features], got shape "
                f"{tuple(feats.shape)}"
            )
        if not self.training:
            return feats
        batch, frames, bins = feats.shape
        device = feats.device
        mask = frame_mask(lengths, frames, batch)
        if mask is None:
            valid = torch.full((batch,), frames, device=device)
        else:
            valid = mask.sum(dim=1).to(device)
        time_mask = self._axis_mask(valid, frames, self.time_mask_width, device)
        freq_mask = self._axis_mask(
            torch.full((batch,), bins, device=device),
            bins,
            self.freq_mask_width,
            device,
        )
        drop = time_mask[:, :, None] | freq_mask[:, None, :]
        return feats.masked_fill(drop, 0.0)
