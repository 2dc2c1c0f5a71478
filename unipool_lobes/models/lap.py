"""Layer attentive pooling (LAP) with attentive statistics pooling (ASTP).

LAP is the UniPool authors' 2025 successor backend (Kim et al., arXiv
2512.22148; code: GitHub sadPororo/LAP, ``src/modules/pooling_layers/
layer_aggregation.py`` and ``src/modules/speaker_networks/astp.py``, with
the defaults of ``src/config/train_frozen.yaml``). It squeezes the layer
axis frame by frame with dynamic layer weights, then pools time:

1. per frame and layer: BatchNorm over the features, a linear map
   ``D -> D``, read as ``H`` heads of ``D / H`` features;
2. per frame and head, the mean and the maximum over the head's features
   give two ``L``-vectors; a per-head MLP ``L -> L // 2 (ReLU) -> L``,
   shared by the two, scores the layers; ``sigmoid(sum)`` (dropout in
   training) scales each layer of that head;
3. the maximum over layers, then ``Linear D -> C`` and BatchNorm;
4. attentive statistics pooling over time with global context,
   BatchNorm, ``Linear 2C -> E`` and BatchNorm.

Every step before the time pooling is per frame, so this implementation
runs it on the valid frames only (gathered from the padded batch): padding
cannot reach an embedding and the batch normalisation statistics of
training are those of the valid frames.

With ``context_std="unbiased"``, ``time_dropout_mode="frames"`` and
``init="authors"`` the backend is the authors' (``tests/test_lap_parity.py``
checks it against a re-implementation of their classes, with weights
mapped by :mod:`unipool_lobes.models.lap_authors`); the defaults keep the
attentive statistics pooling of this package's UniPool.

Authors
 * unipool-sv developers 2026
"""

import torch
from torch import nn
from torch.nn import functional as F

from unipool_lobes.models.mean_pool import check_hidden_states
from unipool_lobes.models.unipool.pooling import AttentiveStatisticsPooling
from unipool_lobes.nnet.masking import frame_mask

__all__ = [
    "INITS",
    "LAP",
    "LayerAttentivePooling",
    "authors_init_",
    "check_init",
    "pool_layers_per_frame",
]

# Choices of the ``init`` option of LAP and MHFA.
INITS = ("authors", "pytorch")


def authors_init_(module):
    """Initialises ``module`` in place as the LAP authors do their backend.

    Their rule, by parameter name: Xavier-uniform for every parameter of
    rank 2 or more whose name contains ``weight``, zeros for every other
    one whose name contains ``bias``; the rest (batch-norm scales, MHFA's
    layer logits) keep their value. Our parameters have the authors'
    shapes (or, for 1x1 convolutions stored as linear layers, the same
    fans), so the distributions are theirs.

    Arguments
    ---------
    module : torch.nn.Module
        The backend.

    Returns
    -------
    torch.nn.Module
        ``module``.

    Example
    -------
    >>> layer = authors_init_(nn.Linear(4, 3))
    >>> layer.bias
    Parameter containing:
    tensor([0., 0., 0.], requires_grad=True)
    """
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if "weight" in name and parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)
            elif "bias" in name:
                nn.init.zeros_(parameter)
    return module


def check_init(init):
    """Raises ValueError unless ``init`` is one of :data:`INITS`.

    Arguments
    ---------
    init : str
        The ``init`` option of a backend.

    Example
    -------
    >>> check_init("authors")
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")


class LayerAttentivePooling(nn.Module):
    """Dynamic per-frame layer attention, then the maximum over layers.

    Works on independent frames: ``[N, L, D]`` in, ``[N, out_channels]``
    out, where ``N`` counts frames (of any utterances).

    Arguments
    ---------
    input_size : int
        Feature size ``D`` of the hidden states; ``num_heads`` must divide it.
    num_layers : int
        Number of hidden states ``L`` (at least 2).
    out_channels : int
        Output size ``C`` per frame.
    num_heads : int
        Number of heads ``H``. With one head there is no input projection,
        as in the authors' code.
    dropout : float
        Dropout on the layer scores in training.

    Example
    -------
    >>> lap = LayerAttentivePooling(
    ...     16, num_layers=5, out_channels=8, num_heads=4
    ... )
    >>> lap(torch.randn(30, 5, 16)).shape
    torch.Size([30, 8])
    """

    def __init__(
        self,
        input_size,
        num_layers,
        out_channels=512,
        num_heads=16,
        dropout=0.1,
    ):
        super().__init__()
        if input_size % num_heads != 0:
            raise ValueError(
                f"num_heads ({num_heads}) must divide input_size ({input_size})"
            )
        if num_layers < 2:
            raise ValueError(
                "num_layers must be at least 2 (the layer MLP has "
                f"num_layers // 2 hidden units), got {num_layers}"
            )
        self.num_heads = num_heads
        hidden = num_layers // 2
        self.input_norm = nn.BatchNorm1d(input_size)
        if num_heads > 1:
            self.input_projection = nn.Linear(input_size, input_size)
        else:
            self.input_projection = nn.Identity()
        # The authors' shapes [H, L, L//2] and [H, L//2, L], so that the
        # Xavier initialiser sees their fans.
        self.squeeze_weight = nn.Parameter(
            torch.empty(num_heads, num_layers, hidden)
        )
        self.squeeze_bias = nn.Parameter(torch.zeros(num_heads, hidden))
        self.excite_weight = nn.Parameter(
            torch.empty(num_heads, hidden, num_layers)
        )
        self.excite_bias = nn.Parameter(torch.zeros(num_heads, num_layers))
        self.dropout = nn.Dropout(dropout)
        self.output_projection = nn.Linear(input_size, out_channels)
        self.output_norm = nn.BatchNorm1d(out_channels)
        nn.init.xavier_uniform_(self.squeeze_weight)
        nn.init.xavier_uniform_(self.excite_weight)

    def _layer_scores(self, summary):
        """Per-head MLP over layers: ``[N, H, L]`` in and out."""
        hidden = torch.einsum("nhl,hlk->nhk", summary, self.squeeze_weight)
        hidden = F.relu(hidden + self.squeeze_bias)
        scores = torch.einsum("nhk,hkl->nhl", hidden, self.excite_weight)
        return scores + self.excite_bias

    def layer_attention(self, frames):
        """The layer weights of each frame and head, before dropout.

        Arguments
        ---------
        frames : torch.Tensor
            ``[N, L, D]`` frames.

        Returns
        -------
        torch.Tensor
            ``[N, H, L]`` weights in (0, 1).
        """
        return torch.sigmoid(self._scores(self._heads(frames)))

    def _heads(self, frames):
        """Normalised, projected frames split into heads: ``[N, L, H, d]``."""
        num_frames, num_layers, features = frames.shape
        normalised = self.input_norm(frames.reshape(-1, features))
        heads = self.input_projection(normalised)
        return heads.view(num_frames, num_layers, self.num_heads, -1)

    def _scores(self, heads):
        """Layer scores from the head-wise mean and maximum: ``[N, H, L]``."""
        mean_scores = self._layer_scores(heads.mean(dim=-1).transpose(1, 2))
        max_scores = self._layer_scores(heads.amax(dim=-1).transpose(1, 2))
        return mean_scores + max_scores

    def forward(self, frames):
        """Pools the layer axis of each frame.

        Arguments
        ---------
        frames : torch.Tensor
            ``[N, L, D]`` frames.

        Returns
        -------
        torch.Tensor
            ``[N, out_channels]``.
        """
        heads = self._heads(frames)
        # Contiguous [N, H, L], the authors' memory order: dropout then
        # draws their masks from the same random stream.
        scores = self._scores(heads).contiguous()
        weights = self.dropout(torch.sigmoid(scores))
        weighted = heads * weights.transpose(1, 2).unsqueeze(-1)
        pooled = weighted.amax(dim=1).flatten(start_dim=1)
        return self.output_norm(self.output_projection(pooled))


class LAP(nn.Module):
    """The LAP + ASTP speaker-embedding backend.

    :class:`LayerAttentivePooling` on every valid frame, then attentive
    statistics pooling over time (the attention sees the utterance's mean
    and standard deviation; masked softmax), ``BatchNorm1d(2C)``,
    ``Linear(2C, E)`` and ``BatchNorm1d(E)``. By default (``init="authors"``)
    weights are Xavier-uniform and biases zero, as the authors initialise
    the whole backend.

    With ``context_std="unbiased"`` and ``time_dropout_mode="frames"`` the
    time pooling is the authors' ASTP, in training too; the defaults keep
    this package's UniPool ``AttentiveStatisticsPooling`` (biased std,
    element-wise dropout on the attention weights), which the authors'
    backend matches in evaluation up to the context std's factor
    ``sqrt(N / (N - 1))``. One difference remains: ours sees the lengths
    (padded frames stay out of the batch-norm statistics and the time
    pooling; theirs get no lengths), so on unpadded input the two are the
    same.

    Arguments
    ---------
    input_size : int
        Feature size ``D`` of the hidden states.
    num_layers : int
        Number of hidden states ``L`` (13 for a base model: the CNN output
        and 12 transformer layers, all used by the authors).
    channels : int
        Output size ``C`` of the layer pooling (the authors' hidden_size).
    num_heads : int
        Heads of the layer attention.
    embedding_size : int
        Size ``E`` of the embedding.
    dropout : float
        Dropout on the layer scores and the time attention in training.
    context_std : str
        The std over time in the attention context: ``"biased"`` (UniPool's)
        or ``"unbiased"`` (the authors'); see
        :class:`~unipool_lobes.models.unipool.pooling.AttentiveStatisticsPooling`.
    time_dropout_mode : str
        The time attention's training dropout: ``"weights"`` (element-wise
        on the attention weights, rescaled; UniPool's) or ``"frames"``
        (whole frames out of the softmax, one draw per utterance and frame,
        no rescaling; the authors').
    init : str
        ``"authors"``: :func:`authors_init_` (Xavier-uniform weights, zero
        biases, batch-norm scales 1), as the authors' ``init_weights``;
        ``"pytorch"``: each layer's PyTorch default (and Xavier for the
        layer MLP, as :class:`LayerAttentivePooling` does).

    Example
    -------
    >>> lap = LAP(
    ...     input_size=32,
    ...     num_layers=5,
    ...     channels=16,
    ...     num_heads=4,
    ...     embedding_size=8,
    ... )
    >>> hidden_states = torch.randn(2, 5, 20, 32)
    >>> lap(hidden_states, torch.tensor([1.0, 0.7])).shape
    torch.Size([2, 1, 8])
    >>> authors = LAP(
    ...     input_size=32,
    ...     num_layers=5,
    ...     channels=16,
    ...     num_heads=4,
    ...     embedding_size=8,
    ...     context_std="unbiased",
    ...     time_dropout_mode="frames",
    ...     init="authors",
    ... )
    >>> authors(hidden_states).shape
    torch.Size([2, 1, 8])
    """

    def __init__(
        self,
        input_size=768,
        num_layers=13,
        channels=512,
        num_heads=16,
        embedding_size=192,
        dropout=0.1,
        context_std="biased",
        time_dropout_mode="weights",
        init="authors",
    ):
        super().__init__()
        check_init(init)
        self.input_size = input_size
        self.num_layers = num_layers
        self.layer_pooling = LayerAttentivePooling(
            input_size, num_layers, channels, num_heads, dropout
        )
        self.time_pooling = AttentiveStatisticsPooling(
            channels,
            dropout,
            context_std=context_std,
            dropout_mode=time_dropout_mode,
        )
        self.pooled_norm = nn.BatchNorm1d(2 * channels)
        self.embedding = nn.Linear(2 * channels, embedding_size)
        self.embedding_norm = nn.BatchNorm1d(embedding_size)
        if init == "authors":
            authors_init_(self)

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
        mask = frame_mask(lengths, num_frames, batch)
        per_frame = pool_layers_per_frame(
            self.layer_pooling, hidden_states, mask
        )
        statistics = self.time_pooling(per_frame.transpose(1, 2), mask)
        embedding = self.embedding(self.pooled_norm(statistics))
        return self.embedding_norm(embedding).unsqueeze(1)


def pool_layers_per_frame(layer_pooling, hidden_states, mask=None):
    """Runs a :class:`LayerAttentivePooling` on the valid frames only.

    Arguments
    ---------
    layer_pooling : LayerAttentivePooling
        The layer pooling.
    hidden_states : torch.Tensor
        ``[B, L, T, D]`` hidden states.
    mask : torch.Tensor, optional
        ``[B, T]`` bool, True at valid frames; None means all valid.

    Returns
    -------
    torch.Tensor
        ``[B, T, C]``, zero at padded frames.

    Example
    -------
    >>> pool = LayerAttentivePooling(
    ...     8, num_layers=3, out_channels=4, num_heads=2
    ... )
    >>> mask = torch.tensor([[True, True, False]])
    >>> out = pool_layers_per_frame(pool, torch.randn(1, 3, 3, 8), mask)
    >>> out.shape, bool(out[0, 2].eq(0).all())
    (torch.Size([1, 3, 4]), True)
    """
    batch, _, num_frames, _ = hidden_states.shape
    frames = hidden_states.transpose(1, 2)  # [B, T, L, D]
    if mask is None:
        pooled = layer_pooling(frames.flatten(end_dim=1))
        return pooled.view(batch, num_frames, -1)
    pooled = layer_pooling(frames[mask])
    per_frame = pooled.new_zeros(batch, num_frames, pooled.shape[-1])
    per_frame[mask] = pooled
    return per_frame
