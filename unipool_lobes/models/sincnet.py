"""SincNet speaker embeddings from the raw waveform, window by window.

SincNet (Ravanelli & Bengio 2018, "Speaker recognition from raw waveform
with SincNet", SLT) embeds short windows of the waveform: a layer norm
over the window's samples, learnable sinc band-pass filters
(SpeechBrain's ``SincConv``), two plain convolutions, each stage followed
by max pooling, a layer norm over the whole feature map and an
activation; then a layer norm and fully connected layers with batch
normalisation. The settings follow the UniPool authors' baseline, which
takes the SincNet authors' LibriSpeech configuration at 16 kHz: 375 ms
windows, 80 sinc filters of 251 taps, two convolutions of 60 filters of 5
taps, max pooling by 3, three layers of 2048 units (leaky ReLU, none,
leaky ReLU). The window embedding is the output of the last of them (the
d-vector).

:class:`SincNet` does the windowing itself, so it works on whole
utterances as any backend of the training script does: in training each
utterance gives one window at a random position; in evaluation the
utterance embedding is the average of its window embeddings (every
window with a 10 ms shift by default; the UniPool authors' code takes 10
evenly spaced windows). Utterances shorter than a window are repeated to
fill it, as in the authors' evaluation. Each window is embedded on its
own, so an utterance gets the same embedding alone or in a padded batch.
:class:`SincNetClassifier` is the softmax head (layer norm, linear,
log-softmax) for SpeechBrain's ``nll_loss``.

Authors
 * unipool-sv developers 2026
"""

import math

import torch
from speechbrain.nnet.CNN import SincConv
from torch import nn
from torch.nn import functional as F

from unipool_lobes.nnet.masking import frame_mask

__all__ = [
    "LastAxisLayerNorm",
    "SincNet",
    "SincNetClassifier",
    "window_starts",
]

LAYER_NORMS = ("authors", "torch")
EVAL_OUTPUTS = ("mean", "windows")

_ACTIVATIONS = {
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "relu": nn.ReLU,
    "none": nn.Identity,
}


def window_starts(num_samples, window, shift=None, num_windows=None):
    """Start samples of the evaluation windows of one utterance.

    Either every ``shift`` samples from 0, plus one window ending at the
    last sample if the shift leaves the end uncovered, or ``num_windows``
    windows evenly spaced from the start to the end. An utterance no
    longer than a window has a single window at 0.

    Arguments
    ---------
    num_samples : int
        Length of the utterance.
    window : int
        Window length in samples.
    shift : int, optional
        Shift between windows (used when ``num_windows`` is None).
    num_windows : int, optional
        Number of evenly spaced windows.

    Returns
    -------
    torch.Tensor
        Start samples (long).

    Raises
    ------
    ValueError
        If neither ``shift`` nor ``num_windows`` is a positive number.

    Example
    -------
    >>> window_starts(10, 4, shift=3)
    tensor([0, 3, 6])
    >>> window_starts(11, 4, shift=3)
    tensor([0, 3, 6, 7])
    >>> window_starts(11, 4, num_windows=3)
    tensor([0, 3, 7])
    >>> window_starts(3, 4, shift=3)
    tensor([0])
    """
    if num_windows is None and (shift is None or shift < 1):
        raise ValueError(
            f"need a shift >= 1 or a number of windows, got shift={shift}"
        )
    if num_windows is not None and num_windows < 1:
        raise ValueError(f"num_windows must be >= 1, got {num_windows}")
    last = num_samples - window
    if last <= 0:
        return torch.zeros(1, dtype=torch.long)
    if num_windows is not None:
        # float64 as numpy's linspace, then truncated as the authors' int().
        starts = torch.linspace(0, last, num_windows, dtype=torch.float64)
        return starts.long()
    starts = torch.arange(0, last + 1, shift)
    if starts[-1] < last:
        starts = torch.cat([starts, torch.tensor([last])])
    return starts


class LastAxisLayerNorm(nn.Module):
    """SincNet's layer norm: statistics over the last axis only.

    On ``[N, C, T]`` feature maps each channel is normalised over time, not
    channels and time jointly as ``nn.LayerNorm([C, T])`` does. As in the
    SincNet (and UniPool) authors' code the standard deviation is the
    unbiased one and ``eps`` is added to it, not to the variance; the gain
    and bias have the full ``shape``.

    Arguments
    ---------
    shape : int or list of int
        Shape of the trailing axes (``[C, T]`` or ``E``).
    eps : float
        Added to the standard deviation.

    Example
    -------
    >>> norm = LastAxisLayerNorm([2, 4])
    >>> x = torch.tensor([[[1.0, 2.0, 3.0, 4.0], [10.0, 10.0, 10.0, 30.0]]])
    >>> norm(x).mean(dim=-1).abs().max() < 1e-6
    tensor(True)
    """

    def __init__(self, shape, eps=1e-6):
        super().__init__()
        shape = [shape] if isinstance(shape, int) else list(shape)
        self.normalized_shape = tuple(shape)
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.eps = eps

    def forward(self, x):
        """Normalises ``x`` over its last axis.

        Arguments
        ---------
        x : torch.Tensor
            ``[..., *shape]``.

        Returns
        -------
        torch.Tensor
            Same shape.
        """
        mean = x.mean(dim=-1, keepdim=True)
        std = x.std(dim=-1, keepdim=True)
        return self.weight * (x - mean) / (std + self.eps) + self.bias


def _layer_norm(kind, shape):
    if kind not in LAYER_NORMS:
        raise ValueError(
            f"layer_norm: {kind!r} is not one of {', '.join(LAYER_NORMS)}"
        )
    if kind == "authors":
        return LastAxisLayerNorm(shape)
    return nn.LayerNorm(shape)


class SincNet(nn.Module):
    """SincNet window encoder with utterance-level windowing.

    Arguments
    ---------
    sample_rate : int
        Sample rate of the waveforms.
    window_ms : float
        Window length in milliseconds (375 in SincNet).
    eval_shift_ms : float
        Shift between evaluation windows in milliseconds (10 in SincNet).
    eval_num_windows : int, optional
        If given, evaluate this many evenly spaced windows instead (10 in
        the UniPool authors' code).
    sinc_channels : int
        Number of sinc band-pass filters.
    sinc_kernel_size : int
        Length of the sinc filters (odd).
    conv_channels : list of int
        Channels of the convolutions after the sinc layer.
    conv_kernel_sizes : list of int
        Kernel sizes of those convolutions.
    pool_sizes : list of int
        Max-pooling size after the sinc layer and after each convolution.
    lin_neurons : list of int
        Units of the fully connected layers; the last is the embedding
        size ``E``.
    lin_activations : list of str
        Activation after each fully connected layer (``"leaky_relu"``,
        ``"relu"`` or ``"none"``).
    normalize_windows : bool
        Average L2-normalised window embeddings in evaluation; otherwise
        average the raw window embeddings. (The UniPool authors score the
        mean pairwise cosine of two utterances' windows: the dot product
        of these normalised averages, of which the cosine differs by a
        per-utterance scale.)
    windows_per_chunk : int
        At most this many windows go through the network at once in
        evaluation (bounds the memory of long utterances).
    layer_norm : str
        ``authors`` (default): SincNet's own layer norm, each channel over
        time (:class:`LastAxisLayerNorm`); ``torch``: ``nn.LayerNorm``
        over channels and time jointly.
    eval_output : str
        ``mean`` (default): evaluation gives one embedding per utterance,
        ``[B, 1, E]``. ``windows``: the L2-normalised embeddings of its
        ``eval_num_windows`` windows, ``[B, K, E]`` (an utterance with a
        single window repeats it), for the authors' score, the mean
        clamped cosine over all window pairs
        (``unipool_lobes.scoring.metrics.window_pair_score_trials``).

    Raises
    ------
    ValueError
        If the window is too short for the layers, the list lengths do not
        match, or an activation is unknown.

    Example
    -------
    >>> sincnet = SincNet(
    ...     window_ms=50,
    ...     sinc_channels=8,
    ...     sinc_kernel_size=31,
    ...     conv_channels=[4, 4],
    ...     lin_neurons=[16, 16, 12],
    ...     eval_shift_ms=20,
    ... ).eval()
    >>> utterance = torch.randn(1, 3000)
    >>> alone = sincnet(utterance)
    >>> padded = torch.cat([utterance, torch.randn(1, 1000)], dim=1)
    >>> batched = sincnet(padded, torch.tensor([0.75]))
    >>> batched.shape
    torch.Size([1, 1, 12])
    >>> torch.allclose(alone, batched, atol=1e-6)
    True
    """

    def __init__(
        self,
        sample_rate=16000,
        window_ms=375.0,
        eval_shift_ms=10.0,
        eval_num_windows=None,
        sinc_channels=80,
        sinc_kernel_size=251,
        conv_channels=[60, 60],
        conv_kernel_sizes=[5, 5],
        pool_sizes=[3, 3, 3],
        lin_neurons=[2048, 2048, 2048],
        lin_activations=["leaky_relu", "none", "leaky_relu"],
        normalize_windows=True,
        windows_per_chunk=256,
        layer_norm="authors",
        eval_output="mean",
    ):
        super().__init__()
        if eval_output not in EVAL_OUTPUTS:
            raise ValueError(
                f"eval_output: {eval_output!r} is not one of "
                f"{', '.join(EVAL_OUTPUTS)}"
            )
        if eval_output == "windows" and not eval_num_windows:
            raise ValueError("eval_output: windows needs eval_num_windows")
        self.eval_output = eval_output
        if len(conv_kernel_sizes) != len(conv_channels):
            raise ValueError(
                f"conv_kernel_sizes {conv_kernel_sizes} and conv_channels "
                f"{conv_channels} must have the same length"
            )
        if len(pool_sizes) != len(conv_channels) + 1:
            raise ValueError(
                f"pool_sizes {pool_sizes} needs one size for the sinc layer "
                f"and one per convolution ({len(conv_channels) + 1})"
            )
        if len(lin_activations) != len(lin_neurons):
            raise ValueError(
                f"lin_activations {lin_activations} and lin_neurons "
                f"{lin_neurons} must have the same length"
            )
        unknown = set(lin_activations) - set(_ACTIVATIONS)
        if unknown:
            raise ValueError(
                f"unknown activations {sorted(unknown)}; use "
                f"{sorted(_ACTIVATIONS)}"
            )
        self.window = int(round(sample_rate * window_ms / 1000))
        self.eval_shift = int(round(sample_rate * eval_shift_ms / 1000))
        self.eval_num_windows = eval_num_windows
        self.normalize_windows = normalize_windows
        self.windows_per_chunk = windows_per_chunk
        self.pool_sizes = list(pool_sizes)

        self.input_norm = _layer_norm(layer_norm, self.window)
        self.sinc = SincConv(
            out_channels=sinc_channels,
            kernel_size=sinc_kernel_size,
            in_channels=1,
            padding="valid",
            sample_rate=sample_rate,
        )
        self.convs = nn.ModuleList()
        self.conv_norms = nn.ModuleList()
        channels = [sinc_channels, *conv_channels]
        kernels = [sinc_kernel_size, *conv_kernel_sizes]
        frames = self.window
        for index, (kernel, pool) in enumerate(
            zip(kernels, pool_sizes, strict=True)
        ):
            frames = (frames - kernel + 1) // pool
            if frames < 1:
                raise ValueError(
                    f"a window of {self.window} samples ({window_ms} ms) is "
                    f"too short for the convolution and pooling layers"
                )
            if index > 0:
                self.convs.append(
                    nn.Conv1d(channels[index - 1], channels[index], kernel)
                )
            self.conv_norms.append(
                _layer_norm(layer_norm, [channels[index], frames])
            )

        flat_size = channels[-1] * frames
        self.flat_norm = _layer_norm(layer_norm, flat_size)
        self.linears = nn.ModuleList()
        self.linear_norms = nn.ModuleList()
        self.activations = nn.ModuleList()
        in_size = flat_size
        for out_size, activation in zip(
            lin_neurons, lin_activations, strict=True
        ):
            linear = nn.Linear(in_size, out_size)
            # SincNet's initialisation: small uniform weights, zero biases.
            bound = math.sqrt(0.01 / (in_size + out_size))
            nn.init.uniform_(linear.weight, -bound, bound)
            nn.init.zeros_(linear.bias)
            self.linears.append(linear)
            self.linear_norms.append(nn.BatchNorm1d(out_size, momentum=0.05))
            self.activations.append(_ACTIVATIONS[activation]())
            in_size = out_size
        self.embedding_size = in_size

    def embed_windows(self, windows):
        """Embeds windows of exactly ``self.window`` samples.

        Arguments
        ---------
        windows : torch.Tensor
            ``[N, W]`` windows.

        Returns
        -------
        torch.Tensor
            ``[N, E]`` window embeddings.

        Raises
        ------
        ValueError
            If the windows do not have ``self.window`` samples.
        """
        if windows.dim() != 2 or windows.shape[1] != self.window:
            raise ValueError(
                f"windows must be [N, {self.window}], got "
                f"{tuple(windows.shape)}"
            )
        x = self.input_norm(windows)
        x = self.sinc(x).transpose(1, 2).abs()
        x = F.relu(self.conv_norms[0](F.max_pool1d(x, self.pool_sizes[0])))
        for conv, norm, pool in zip(
            self.convs, self.conv_norms[1:], self.pool_sizes[1:], strict=True
        ):
            x = F.relu(norm(F.max_pool1d(conv(x), pool)))
        x = self.flat_norm(x.flatten(start_dim=1))
        for linear, norm, activation in zip(
            self.linears, self.linear_norms, self.activations, strict=True
        ):
            x = activation(norm(linear(x)))
        return x

    def forward(self, wav, lengths=None):
        """Returns the utterance embeddings.

        Arguments
        ---------
        wav : torch.Tensor
            ``[B, S]`` waveforms (a trailing feature axis of size 1 is
            accepted).
        lengths : torch.Tensor, optional
            ``[B]`` lengths relative to ``S``; None means all full.

        Returns
        -------
        torch.Tensor
            ``[B, 1, E]``: one random window's embedding per utterance in
            training, the average over its windows in evaluation.

        Raises
        ------
        ValueError
            For a badly shaped input or lengths outside (0, 1].
        """
        if wav.dim() == 3 and wav.shape[-1] == 1:
            wav = wav.squeeze(-1)
        if wav.dim() != 2:
            raise ValueError(
                f"wav must be [batch, samples], got shape {tuple(wav.shape)}"
            )
        batch, num_samples = wav.shape
        mask = frame_mask(lengths, num_samples, batch)
        if mask is None:
            counts = torch.full((batch,), num_samples, device=wav.device)
        else:
            counts = mask.sum(dim=1)
        if self.training:
            return self._embed_random_windows(wav, counts).unsqueeze(1)
        embeddings = self._embed_utterances(wav, counts)
        return embeddings if embeddings.dim() == 3 else embeddings.unsqueeze(1)

    def _window_index(self, starts, count):
        """``[N, W]`` sample indices; short utterances wrap around."""
        offsets = torch.arange(self.window, device=starts.device)
        return (starts.unsqueeze(-1) + offsets) % count.unsqueeze(-1)

    def _embed_random_windows(self, wav, counts):
        """One window per utterance at a random start, embedded."""
        room = (counts - self.window).clamp(min=0)
        draws = torch.rand(room.shape, device=wav.device)
        starts = torch.minimum((draws * (room + 1)).long(), room)
        index = self._window_index(starts, counts)
        return self.embed_windows(wav.gather(1, index))

    def _embed_utterances(self, wav, counts):
        """Average window embedding of each utterance."""
        windows, owners = [], []
        for row, count in enumerate(counts.tolist()):
            starts = window_starts(
                count, self.window, self.eval_shift, self.eval_num_windows
            ).to(wav.device)
            index = self._window_index(starts, counts[row])
            windows.append(wav[row, index])
            owners.append(torch.full((len(starts),), row, device=wav.device))
        windows = torch.cat(windows)
        owners = torch.cat(owners)
        embeddings = torch.cat(
            [
                self.embed_windows(chunk)
                for chunk in windows.split(self.windows_per_chunk)
            ]
        )
        if self.eval_output == "windows":
            unit = F.normalize(embeddings, dim=-1)
            # K windows each; a short utterance's single window repeated.
            sets = [
                unit[owners == row].expand(self.eval_num_windows, -1)
                for row in range(wav.shape[0])
            ]
            return torch.stack(sets)
        if self.normalize_windows:
            embeddings = F.normalize(embeddings, dim=-1)
        totals = embeddings.new_zeros(wav.shape[0], embeddings.shape[1])
        totals.index_add_(0, owners, embeddings)
        per_utterance = torch.bincount(owners, minlength=wav.shape[0])
        return totals / per_utterance.unsqueeze(1).to(totals.dtype)


class SincNetClassifier(nn.Module):
    """SincNet's softmax head: layer norm, linear, log-softmax.

    Its log-probabilities go to SpeechBrain's ``nll_loss``.

    Arguments
    ---------
    input_size : int
        Embedding size ``E``.
    out_neurons : int
        Number of training speakers.
    layer_norm : str
        ``authors`` (SincNet's layer norm) or ``torch`` (``nn.LayerNorm``)
        on the input.

    Example
    -------
    >>> head = SincNetClassifier(input_size=16, out_neurons=5)
    >>> log_probs = head(torch.randn(3, 1, 16))
    >>> log_probs.shape
    torch.Size([3, 1, 5])
    >>> log_probs.exp().sum(dim=-1).flatten().round(decimals=4).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, input_size=2048, out_neurons=1211, layer_norm="authors"):
        super().__init__()
        self.norm = _layer_norm(layer_norm, input_size)
        self.out = nn.Linear(input_size, out_neurons)
        bound = math.sqrt(0.01 / (input_size + out_neurons))
        nn.init.uniform_(self.out.weight, -bound, bound)
        nn.init.zeros_(self.out.bias)

    def forward(self, embeddings):
        """Returns the log-probabilities of the speakers.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[B, 1, E]`` or ``[B, E]`` embeddings.

        Returns
        -------
        torch.Tensor
            ``[B, 1, out_neurons]`` log-probabilities.
        """
        if embeddings.dim() == 2:
            embeddings = embeddings.unsqueeze(1)
        return F.log_softmax(self.out(self.norm(embeddings)), dim=-1)
