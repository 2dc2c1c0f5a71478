"""Learnable weighted sum of SSL layers, then a padding-invariant ECAPA-TDNN.

The standard SSL speaker recipe (Chen et al. 2022, WavLM, arXiv 2110.05777;
SpeechBrain's MP3S/DASB benchmarks): a softmax-weighted average of all the
hidden states of the pretrained model feeds an ECAPA-TDNN. SpeechBrain's
``WeightedSSLModel`` drops the lengths; here they reach every layer that
mixes frames.

SpeechBrain's ``ECAPA_TDNN`` masks its statistics (SE blocks, attentive
pooling) but not its time convolutions: their 'same' reflect padding is
applied at the end of the padded batch, not at the end of each utterance,
so the last frames of a shorter utterance see padding (max |diff| 4e-3 for
zero padding, about 2 for large random padding, on a 50-frame utterance in
a 110-frame batch). :class:`PaddingInvariantECAPA` fixes this without
changing the module tree or the state dict: before each such convolution it
writes, past each utterance's end, what the convolution's own padding would
have written there for the utterance alone.

Authors
 * unipool-sv developers 2026
"""

import contextlib

import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from speechbrain.nnet.CNN import Conv1d as SBConv1d
from torch import nn
from torch.nn import functional as F

from unipool_lobes.models.mean_pool import check_hidden_states
from unipool_lobes.nnet.masking import frame_mask

__all__ = ["LayerWeightedECAPA", "PaddingInvariantECAPA", "fill_past_end"]

_FILL_MODES = ("reflect", "replicate", "constant", "zeros")


def fill_past_end(x, frame_counts, extra_frames, mode="reflect"):
    """Extends ``[B, C, T]`` by frames and rewrites each row past its end.

    Frame ``t >= n_b`` of row ``b`` becomes what ``F.pad`` in ``mode`` would
    put after the first ``n_b`` frames, so a 'same' convolution of reach
    ``extra_frames`` gives every valid frame the output it would have for
    the utterance alone.

    Arguments
    ---------
    x : torch.Tensor
        ``[B, C, T]`` channel-first batch.
    frame_counts : torch.Tensor
        ``[B]`` valid frames per row (long, at least 1).
    extra_frames : int
        Frames appended at the end (the convolution's one-sided padding).
    mode : str
        ``"reflect"``, ``"replicate"``, ``"constant"`` or ``"zeros"``.

    Returns
    -------
    torch.Tensor
        ``[B, C, T + extra_frames]``.

    Example
    -------
    >>> x = torch.tensor([[[1.0, 2.0, 3.0, 9.0]]])
    >>> fill_past_end(x, torch.tensor([3]), extra_frames=1)
    tensor([[[1., 2., 3., 2., 1.]]])
    """
    batch, channels, frames = x.shape
    positions = torch.arange(frames + extra_frames, device=x.device)
    counts = frame_counts.to(x.device).unsqueeze(1)
    inside = positions < counts
    if mode in ("constant", "zeros"):
        padded = F.pad(x, (0, extra_frames))
        return torch.where(inside.unsqueeze(1), padded, 0.0)
    if mode == "reflect":
        outside = 2 * (counts - 1) - positions
    elif mode == "replicate":
        outside = (counts - 1).expand_as(inside)
    else:
        raise ValueError(f"padding mode {mode!r} is not one of {_FILL_MODES}")
    index = torch.where(inside, positions, outside).clamp(0, frames - 1)
    index = index.unsqueeze(1).expand(batch, channels, -1)
    return x.gather(2, index)


class PaddingInvariantECAPA(ECAPA_TDNN):
    """SpeechBrain's ``ECAPA_TDNN`` whose output ignores padded frames.

    Same arguments, modules and state dict as ``ECAPA_TDNN`` (checkpoints
    load either way). In ``forward``, every SpeechBrain ``Conv1d`` with
    'same' padding and a kernel longer than 1 gets, past each utterance's
    last valid frame, the frames its padding mode would have produced for
    the utterance alone (:func:`fill_past_end`); the statistics use the
    same frame counts. In evaluation an utterance then gets the same
    embedding alone or in a padded batch. In training, batch normalisation
    still averages over the padded frames (which hold reflected copies of
    valid ones); fixed-length training crops have none.

    Lengths are relative (SpeechBrain's convention); an utterance covers
    ``round(length * T)`` frames.

    Arguments
    ---------
    *args, **kwargs
        Those of ``speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN``.

    Raises
    ------
    ValueError
        If a time convolution has a stride, an even kernel or a padding
        mode (``circular``) that cannot be reproduced per utterance.

    Example
    -------
    >>> ecapa = PaddingInvariantECAPA(
    ...     input_size=20,
    ...     channels=[16] * 4 + [48],
    ...     attention_channels=8,
    ...     se_channels=8,
    ...     lin_neurons=12,
    ... ).eval()
    >>> utterance = torch.randn(1, 30, 20)
    >>> alone = ecapa(utterance)
    >>> padded = torch.cat([utterance, 1e3 * torch.randn(1, 10, 20)], dim=1)
    >>> batched = ecapa(padded, torch.tensor([0.75]))
    >>> batched.shape
    torch.Size([1, 1, 12])
    >>> torch.allclose(alone, batched, atol=1e-5)
    True
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._frame_counts = None
        self._num_frames = None
        for name, module in self.named_modules():
            if not isinstance(module, SBConv1d) or module.kernel_size == 1:
                continue
            if module.padding != "same":
                continue
            if module.stride != 1 or module.kernel_size % 2 == 0:
                raise ValueError(
                    f"{name}: cannot make a convolution with stride "
                    f"{module.stride} and kernel {module.kernel_size} "
                    "padding-invariant (needs stride 1, odd kernel)"
                )
            if module.padding_mode not in _FILL_MODES:
                raise ValueError(
                    f"{name}: padding mode {module.padding_mode!r} is not "
                    f"one of {_FILL_MODES}"
                )
            module.register_forward_pre_hook(self._extend_past_end)
            module.register_forward_hook(self._crop_to_batch)

    def _extend_past_end(self, conv, args):
        """Forward pre-hook: per-utterance padding past each end."""
        if self._frame_counts is None:
            return None
        (x, *rest) = args
        reach = conv.dilation * (conv.kernel_size - 1) // 2
        if not conv.skip_transpose:
            x = x.transpose(1, -1)
        x = fill_past_end(x, self._frame_counts, reach, conv.padding_mode)
        if not conv.skip_transpose:
            x = x.transpose(1, -1)
        return (x, *rest)

    def _crop_to_batch(self, conv, args, output):
        """Forward hook: drops the frames the pre-hook appended."""
        if self._frame_counts is None:
            return None
        if conv.skip_transpose:
            return output[..., : self._num_frames]
        return output[:, : self._num_frames]

    @contextlib.contextmanager
    def _fill_padding(self, frame_counts, num_frames):
        """Turns the hooks on for the duration of one forward pass."""
        self._frame_counts, self._num_frames = frame_counts, num_frames
        try:
            yield
        finally:
            self._frame_counts, self._num_frames = None, None

    def forward(self, x, lengths=None):
        """Returns the embeddings.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, T, F]`` features.
        lengths : torch.Tensor, optional
            ``[B]`` lengths relative to ``T``; None means all frames valid.

        Returns
        -------
        torch.Tensor
            ``[B, 1, lin_neurons]`` embeddings.
        """
        batch, num_frames = x.shape[:2]
        mask = frame_mask(lengths, num_frames, batch)
        if mask is None:
            return super().forward(x)
        counts = mask.sum(dim=1)
        # SpeechBrain masks frames t < length * T, which a float error in
        # n / T can push past n; half a frame less is exact either way.
        safe_lengths = (counts.to(x.dtype) - 0.5) / num_frames
        with self._fill_padding(counts, num_frames):
            return super().forward(x, safe_lengths)


class LayerWeightedECAPA(nn.Module):
    """Softmax-weighted sum of the SSL layers, then ECAPA-TDNN.

    The layer weights start at zero (all layers weigh the same). With
    ``layer_norm=True`` each layer is first normalised over its features,
    frame by frame (no parameters; it never mixes frames, unlike
    SpeechBrain's ``output_norm``, which normalises over time too). The
    sum goes to :class:`PaddingInvariantECAPA` with the lengths.

    The ECAPA defaults are SpeechBrain's and those of the WavLM paper's
    ``ECAPA_TDNN_SMALL`` (microsoft/UniSpeech): channels
    ``[512, 512, 512, 512, 1536]``, kernels ``[5, 3, 3, 3, 1]``, dilations
    ``[1, 2, 3, 4, 1]``, attention and SE bottlenecks 128, Res2Net scale 8.
    They differ from the WavLM paper in the global context of the
    attentive pooling (on here, SpeechBrain's default; off there), the
    embedding size (192 here, 256 there) and the input normalisation
    (none or per frame here; per utterance over time there).

    Arguments
    ---------
    input_size : int
        Feature size ``D`` of the hidden states.
    num_layers : int
        Number of hidden states ``L`` (13 for a base model).
    layer_norm : bool
        Normalise each layer over its features before the weighted sum.
    channels : list of int
        ECAPA channels (four TDNN/SE-Res2Net blocks, then the aggregation).
    kernel_sizes : list of int
        ECAPA kernel sizes.
    dilations : list of int
        ECAPA dilations.
    attention_channels : int
        Bottleneck of the attentive statistics pooling.
    res2net_scale : int
        Res2Net scale.
    se_channels : int
        Bottleneck of the squeeze-excitation blocks.
    global_context : bool
        Whether the attentive pooling sees the utterance mean and std.
    lin_neurons : int
        Embedding size ``E``.

    Example
    -------
    >>> backend = LayerWeightedECAPA(
    ...     input_size=32,
    ...     num_layers=3,
    ...     channels=[16, 16, 16, 16, 48],
    ...     attention_channels=8,
    ...     se_channels=8,
    ...     lin_neurons=12,
    ... )
    >>> hidden_states = torch.randn(2, 3, 40, 32)
    >>> backend(hidden_states, torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 1, 12])
    >>> backend.layer_weights
    tensor([0.3333, 0.3333, 0.3333])
    """

    def __init__(
        self,
        input_size=768,
        num_layers=13,
        layer_norm=False,
        channels=[512, 512, 512, 512, 1536],
        kernel_sizes=[5, 3, 3, 3, 1],
        dilations=[1, 2, 3, 4, 1],
        attention_channels=128,
        res2net_scale=8,
        se_channels=128,
        global_context=True,
        lin_neurons=192,
    ):
        super().__init__()
        self.input_size = input_size
        self.num_layers = num_layers
        self.layer_norm = layer_norm
        self.weights = nn.Parameter(torch.zeros(num_layers))
        self.ecapa = PaddingInvariantECAPA(
            input_size,
            lin_neurons=lin_neurons,
            channels=list(channels),
            kernel_sizes=list(kernel_sizes),
            dilations=list(dilations),
            attention_channels=attention_channels,
            res2net_scale=res2net_scale,
            se_channels=se_channels,
            global_context=global_context,
        )

    @property
    def layer_weights(self):
        """The layer weights after the softmax, ``[L]`` (for plotting)."""
        return self.weights.detach().softmax(dim=0)

    def forward(self, hidden_states, lengths=None):
        """Returns the embeddings.

        Arguments
        ---------
        hidden_states : torch.Tensor
            ``[B, L, T, D]`` hidden states.
        lengths : torch.Tensor, optional
            ``[B]`` lengths relative to ``T``; None means all frames valid.

        Returns
        -------
        torch.Tensor
            ``[B, 1, E]`` embeddings.
        """
        batch, _, num_frames, _ = check_hidden_states(
            hidden_states, self.num_layers, self.input_size
        )
        if self.layer_norm:
            hidden_states = F.layer_norm(
                hidden_states, hidden_states.shape[-1:]
            )
        weights = self.weights.softmax(dim=0)
        mixed = torch.einsum("l,bltd->btd", weights, hidden_states)
        mask = frame_mask(lengths, num_frames, batch)
        if mask is not None:
            # Zeros keep an inf or NaN of a padded frame out of the sums.
            mixed = torch.where(mask.unsqueeze(-1), mixed, 0.0)
        return self.ecapa(mixed, lengths)
