"""The UniPool backend: a speaker embedding from all layers of an SSL model.

UniPool ("Universal Pooling Method of Multi-layer Features from Pretrained
Models for Speaker Verification", arXiv 2409.07770; later called L-TDNN)
reads the hidden states of every transformer layer of a pretrained speech
model and pools them, over layers and time, into one embedding:

1. a 1x1 projection of each layer's features to ``4C`` channels;
2. ``num_blocks`` D3 blocks on ``[B, 4C, L, T]``: layer re-weighting and
   frame gate, dense multi-dilated 3x3 convolutions over (layer, time) and
   channel attention, with a residual;
3. attention pooling over the layer axis;
4. attentive statistics pooling over time, then ``Linear -> E``.

The building blocks live in :mod:`unipool_lobes.models.unipool.blocks` and
:mod:`unipool_lobes.models.unipool.pooling`. :func:`convert_authors_state_dict`
loads checkpoints trained with the authors' code (GitHub
sadPororo/UniPool-SV; implemented in
:mod:`unipool_lobes.models.unipool.authors`).

Authors
 * unipool-sv developers 2026
"""

import contextlib

import torch
from torch import nn

from unipool_lobes.models.unipool.authors import (
    authors_hparams_from_state_dict,
    convert_authors_state_dict,
    convert_to_authors_state_dict,
)
from unipool_lobes.models.unipool.blocks import UniPoolBlock, init_xavier_
from unipool_lobes.models.unipool.pooling import (
    AttentiveStatisticsPooling,
    LayerAttentionPooling,
)
from unipool_lobes.nnet.masking import (
    frame_mask,
    masked_batch_norm,
    time_mask_like,
)
from unipool_lobes.nnet.spanout import span_out

__all__ = [
    "UniPool",
    "authors_hparams_from_state_dict",
    "convert_authors_state_dict",
    "convert_to_authors_state_dict",
]


class UniPool(nn.Module):
    """UniPool speaker-embedding backend over multi-layer SSL features.

    ``forward(hidden_states [B, L_in, T, D], lengths [B]) -> [B, 1, E]``,
    SpeechBrain's embedding shape. ``hidden_states`` are the stacked hidden
    states of a pretrained model as our SSL front-end returns them: the CNN
    output first, then every transformer layer (``L_in = L + 1``). By
    default layers ``1..num_layers`` are used, as the authors do.

    Padding never changes an embedding: padded frames are zeroed before
    every convolution that spans time, gated to 0, and excluded from the
    channel-attention pools and the statistics pooling.

    Batch normalisation in training: the statistics of the normalisations
    that see frames are computed over **valid frames only** (masked mean and
    variance; running statistics updated with them), so a padded batch
    trains as its unpadded content would. Without padding (``lengths`` None
    or all 1, the authors' fixed 3 s crops) plain ``BatchNorm`` runs. The
    modules are plain ``nn.BatchNorm1d/2d``: SpeechBrain's DDP may turn
    them into ``nn.SyncBatchNorm``, and the masked statistics are then
    reduced over the processes (see
    :func:`~unipool_lobes.nnet.masking.masked_batch_norm`).

    Introspection: set ``keep_attention = True`` (or use
    :meth:`keeping_attention`) and, after a forward, read
    ``layer_attention_weights`` (``[B, H, L, T]`` sigmoid weights of the
    layer attention pooling, per head, not averaged, before dropout, 0 at
    padded frames) and ``layer_gates`` (one ``[B, L, T]`` frame-gate tensor
    per D3 block). Both are detached; when ``keep_attention`` is False
    they are None and cost nothing. :meth:`layer_mixing_weights` gives the
    learnt layer-mixing matrices.

    Arguments
    ---------
    input_size : int
        Hidden size ``D`` of the pretrained model (768 base, 1024 large).
    num_layers : int
        Number of layers ``L`` used (12 base, 24 large).
    layers : sequence of int, optional
        Indices into the layer axis of ``hidden_states``; ``len(layers)``
        must be ``num_layers``. Default ``1..num_layers`` (index 0, the CNN
        output, dropped).
    conv_channels : int
        ``C`` (128); the block width is ``C * (len(dilations) + 1)``.
    num_blocks : int
        Number of D3 blocks (1).
    dilations : sequence of int
        Dilations of the dense steps (``(1, 2, 4)``).
    attention_heads : int
        Heads ``H`` of the layer attention pooling (4).
    lin_neurons : int
        Embedding size ``E`` (192).
    dropout : float
        Dropout of the layer attention and of the time attention (0.1).
    double_residual : bool
        True (default) reproduces the authors' ``x_next = 2 x + f(x)``;
        False gives the plain residual ``x + f(x)``.
    spanout_prob : float
        In training, the probability that an utterance gets the authors'
        span-out (``unipool_lobes.nnet.spanout.span_out``: random spans of
        frames dropped and the gaps closed). Default 0 (off, as the
        authors' default).
    span_start_prob : float
        Span-out: probability that a frame starts a dropped span (0.05).
    span_length : int
        Span-out: frames per dropped span (3).

    Example
    -------
    >>> model = UniPool(input_size=32, num_layers=4, conv_channels=8)
    >>> hidden_states = torch.randn(2, 5, 20, 32)  # CNN output + 4 layers
    >>> embeddings = model(hidden_states, torch.tensor([1.0, 0.6]))
    >>> embeddings.shape
    torch.Size([2, 1, 192])
    >>> with model.eval().keeping_attention():
    ...     _ = model(hidden_states)
    >>> model.layer_attention_weights.shape, model.layer_gates[0].shape
    (torch.Size([2, 4, 4, 20]), torch.Size([2, 4, 20]))
    """

    def __init__(
        self,
        input_size=768,
        num_layers=12,
        layers=None,
        conv_channels=128,
        num_blocks=1,
        dilations=(1, 2, 4),
        attention_heads=4,
        lin_neurons=192,
        dropout=0.1,
        double_residual=True,
        spanout_prob=0.0,
        span_start_prob=0.05,
        span_length=3,
    ):
        super().__init__()
        self.spanout_prob = spanout_prob
        self.span_start_prob = span_start_prob
        self.span_length = span_length
        if layers is None:
            layers = range(1, num_layers + 1)
        self.layers = tuple(int(index) for index in layers)
        if len(self.layers) != num_layers:
            raise ValueError(
                f"layers has {len(self.layers)} entries for num_layers="
                f"{num_layers}: {self.layers}"
            )
        if min(self.layers) < 0:
            raise ValueError(f"layers must be non-negative: {self.layers}")
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        self.num_layers = num_layers
        self.input_size = input_size
        block_channels = conv_channels * (len(dilations) + 1)
        pooled_channels = 4 * conv_channels

        self.input_projection = init_xavier_(
            nn.Linear(input_size, block_channels)
        )
        self.input_norm = nn.BatchNorm2d(block_channels)
        self.blocks = nn.ModuleList(
            UniPoolBlock(
                block_channels,
                conv_channels,
                num_layers,
                dilations=tuple(dilations),
                double_residual=double_residual,
            )
            for _ in range(num_blocks)
        )
        self.layer_pooling = LayerAttentionPooling(
            block_channels * num_blocks,
            pooled_channels,
            num_layers=num_layers,
            num_heads=attention_heads,
            dropout=dropout,
        )
        self.time_pooling = AttentiveStatisticsPooling(
            pooled_channels, dropout=dropout
        )
        self.stats_norm = nn.BatchNorm1d(2 * pooled_channels)
        self.embedding = nn.Linear(2 * pooled_channels, lin_neurons)
        self.embedding_norm = nn.BatchNorm1d(lin_neurons)

        self.keep_attention = False
        self.layer_attention_weights = None
        self.layer_gates = None

    def _select_layers(self, hidden_states):
        """Returns ``[B, L, T, D]``, a view when the layers are a range."""
        if hidden_states.dim() != 4:
            raise ValueError(
                "hidden_states must be [batch, layers, frames, features], "
                f"got shape {tuple(hidden_states.shape)}"
            )
        if hidden_states.shape[-1] != self.input_size:
            raise ValueError(
                f"hidden_states has {hidden_states.shape[-1]} features, the "
                f"model was built with input_size={self.input_size}"
            )
        available = hidden_states.shape[1]
        if max(self.layers) >= available:
            raise ValueError(
                f"hidden_states has {available} layers but layer index "
                f"{max(self.layers)} is requested (layers={self.layers}); "
                "pass all hidden states (CNN output + every transformer "
                "layer) or set `layers`"
            )
        first, last = self.layers[0], self.layers[-1]
        if self.layers == tuple(range(first, last + 1)):
            return hidden_states[:, first : last + 1]
        index = torch.tensor(self.layers, device=hidden_states.device)
        return hidden_states.index_select(1, index)

    def forward(self, hidden_states, lengths=None):
        """Computes speaker embeddings.

        Arguments
        ---------
        hidden_states : torch.Tensor
            ``[B, L_in, T, D]`` hidden states of the pretrained model.
        lengths : torch.Tensor, optional
            ``[B]`` relative lengths in ``(0, 1]``; None means no padding.

        Returns
        -------
        torch.Tensor
            ``[B, 1, E]`` embeddings (not normalised).

        Raises
        ------
        ValueError
            If the shapes or the lengths are inconsistent.
        """
        features = self._select_layers(hidden_states)
        if self.training and self.spanout_prob > 0:
            features, lengths = span_out(
                features,
                lengths,
                self.spanout_prob,
                self.span_start_prob,
                self.span_length,
            )
        batch, _, frames, _ = features.shape
        mask = frame_mask(lengths, frames, batch_size=batch)
        x = self.input_projection(features).permute(0, 3, 1, 2)
        x = masked_batch_norm(self.input_norm, x, mask)
        block_outputs, gates = [], []
        for block in self.blocks:
            x, gate = block(x, mask)
            block_outputs.append(x)
            gates.append(gate)
        x = torch.cat(block_outputs, dim=1)
        x, attention = self.layer_pooling(x, mask)
        stats = self.time_pooling(x, mask)
        embeddings = self.embedding_norm(self.embedding(self.stats_norm(stats)))
        self._keep_introspection(attention, gates, mask)
        return embeddings.unsqueeze(1)

    def _keep_introspection(self, attention, gates, mask):
        """Stores detached attention and gates if ``keep_attention``."""
        if not self.keep_attention:
            self.layer_attention_weights = None
            self.layer_gates = None
            return
        attention = attention.detach()
        if mask is not None:
            attention = attention.masked_fill(
                ~time_mask_like(mask, attention), 0.0
            )
        self.layer_attention_weights = attention
        self.layer_gates = tuple(gate.detach() for gate in gates)

    @contextlib.contextmanager
    def keeping_attention(self):
        """Context manager: keep the attention of forwards inside it.

        Yields
        ------
        UniPool
            This model, with ``keep_attention`` True until the block exits.

        Example
        -------
        >>> model = UniPool(input_size=16, num_layers=2, conv_channels=4)
        >>> with model.eval().keeping_attention():
        ...     _ = model(torch.randn(1, 3, 8, 16))
        >>> model.keep_attention, model.layer_gates[0].shape
        (False, torch.Size([1, 2, 8]))
        """
        previous = self.keep_attention
        self.keep_attention = True
        try:
            yield self
        finally:
            self.keep_attention = previous

    def layer_mixing_weights(self):
        """Returns each block's layer-mixing matrix ``[L_out, L_in]``.

        Returns
        -------
        tuple of torch.Tensor
            One detached ``softmax(scores)`` matrix per D3 block; row ``i``
            holds the weights of the input layers for layer ``i``.

        Example
        -------
        >>> model = UniPool(input_size=16, num_layers=3, conv_channels=4)
        >>> mixing = model.layer_mixing_weights()[0]
        >>> round(float(mixing[0, 0]), 4)  # e / (e + L - 1) at init
        0.5761
        """
        return tuple(
            block.layer_gate.mixing_weights().detach() for block in self.blocks
        )

    @torch.no_grad()
    def encode(
        self, hidden_states, lengths=None, autocast_dtype=torch.bfloat16
    ):
        """Inference helper: embeddings in evaluation mode, without grad.

        On CUDA the forward runs under ``torch.autocast`` with
        ``autocast_dtype`` (bf16 by default; fp16 also works; None turns
        autocast off); the statistics pooling always computes in float32.
        On CPU it runs in float32. The model is put in evaluation mode for
        the call and its previous mode restored afterwards.

        Arguments
        ---------
        hidden_states : torch.Tensor
            ``[B, L_in, T, D]``.
        lengths : torch.Tensor, optional
            ``[B]`` relative lengths.
        autocast_dtype : torch.dtype, optional
            Autocast dtype on CUDA.

        Returns
        -------
        torch.Tensor
            ``[B, 1, E]`` float32 embeddings.

        Example
        -------
        >>> model = UniPool(input_size=16, num_layers=2, conv_channels=4)
        >>> model.encode(torch.randn(3, 3, 8, 16)).shape
        torch.Size([3, 1, 192])
        >>> model.training
        True
        """
        was_training = self.training
        self.eval()
        use_autocast = hidden_states.is_cuda and autocast_dtype is not None
        try:
            with torch.autocast(
                device_type=hidden_states.device.type,
                dtype=autocast_dtype,
                enabled=use_autocast,
            ):
                embeddings = self.forward(hidden_states, lengths)
        finally:
            self.train(was_training)
        return embeddings.float()
