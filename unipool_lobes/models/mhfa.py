"""Multi-head factorized attentive pooling (MHFA) over SSL hidden states.

MHFA (Peng et al. 2022, "An attention-based backend allowing efficient
fine-tuning of transformer models for speaker verification", SLT 2022) is a
light backend over all the hidden states of an SSL model: two learnable
softmax-weighted sums over layers give a *key* and a *value* sequence, both
compressed to a small dimension; ``H`` attention heads computed from the
keys each pool the values over time; the ``H`` pooled vectors are
concatenated and projected to the embedding.

The defaults are those of the authors' recipe in WeSpeaker
(``wespeaker/models/ssl_backend.py``, the ``MHFA`` class, with the WavLM
Base+ configuration of BUTSpeechFIT/wespeaker_ssl_public: 64 heads,
compression 128, embedding 256, all 13 hidden states of a base model).
Unlike that code, padded frames are masked out of the attention, so an
utterance gets the same embedding alone or in a padded batch.

The LAP authors' MHFA (GitHub sadPororo/LAP,
``src/modules/speaker_networks/mhfa.py``) is the same computation; it also
allows a full LAP layer pooling (:class:`~unipool_lobes.models.lap.
LayerAttentivePooling`) as each of the key and value aggregators
(``layer_aggregation="lap"`` here), and initialises the backend with
Xavier-uniform weights and zero biases (``init="authors"``).
:mod:`unipool_lobes.models.lap_authors` maps their weights to this class.

Authors
 * unipool-sv developers 2026
"""

import torch
from torch import nn

from unipool_lobes.models.lap import (
    LayerAttentivePooling,
    authors_init_,
    check_init,
    pool_layers_per_frame,
)
from unipool_lobes.models.mean_pool import check_hidden_states
from unipool_lobes.nnet.masking import frame_mask

__all__ = ["LAYER_AGGREGATIONS", "MHFA"]

# Choices of MHFA's layer_aggregation option.
LAYER_AGGREGATIONS = ("weighted_sum", "lap")


class MHFA(nn.Module):
    """Multi-head factorized attentive pooling.

    ``k = sum_l softmax(w_k)_l h_l`` and ``v = sum_l softmax(w_v)_l h_l``
    (layer weights initialised equal), each compressed by a linear layer
    ``D -> compression_dim``; a linear layer on the keys gives ``H`` scores
    per frame, a softmax over the valid frames turns each into attention
    weights, the values are averaged with each head's weights, and the
    ``H * compression_dim`` concatenation is projected to the embedding.

    With ``layer_aggregation="lap"``, ``k`` and ``v`` come instead from two
    :class:`~unipool_lobes.models.lap.LayerAttentivePooling` (per-frame dynamic
    layer attention to ``lap_channels``), run on the valid frames only.

    Arguments
    ---------
    input_size : int
        Feature size ``D`` of the hidden states (768 base, 1024 large).
    num_layers : int
        Number of hidden states ``L`` in the input (13 for a base model:
        the CNN output and 12 transformer layers).
    num_heads : int
        Number of attention heads ``H``.
    compression_dim : int
        Size of the compressed keys and values.
    embedding_size : int
        Size ``E`` of the embedding.
    layer_aggregation : str
        ``"weighted_sum"`` (softmax-weighted sums over layers; the MHFA
        paper's, the authors' ``superb``) or ``"lap"`` (the LAP authors'
        ``lap`` option).
    lap_channels : int
        Output size of each LAP aggregator (the authors' ``hidden_size``);
        only with ``layer_aggregation="lap"``.
    lap_num_heads : int
        Heads of each LAP aggregator (the authors' ``n_head``).
    lap_dropout : float
        Dropout on the LAP layer scores in training (the authors'
        ``dropout``).
    init : str
        ``"pytorch"``: each layer's PyTorch default; ``"authors"``:
        :func:`~unipool_lobes.models.lap.authors_init_` (Xavier-uniform weights,
        zero biases, layer logits and batch-norm scales untouched), as the
        LAP authors initialise their backend.

    Example
    -------
    >>> mhfa = MHFA(
    ...     input_size=32,
    ...     num_layers=3,
    ...     num_heads=4,
    ...     compression_dim=8,
    ...     embedding_size=16,
    ... )
    >>> hidden_states = torch.randn(2, 3, 20, 32)
    >>> mhfa(hidden_states, torch.tensor([1.0, 0.6])).shape
    torch.Size([2, 1, 16])
    >>> with_lap = MHFA(
    ...     input_size=32,
    ...     num_layers=3,
    ...     num_heads=4,
    ...     compression_dim=8,
    ...     embedding_size=16,
    ...     layer_aggregation="lap",
    ...     lap_channels=12,
    ...     lap_num_heads=4,
    ...     init="authors",
    ... )
    >>> with_lap(hidden_states, torch.tensor([1.0, 0.6])).shape
    torch.Size([2, 1, 16])
    """

    def __init__(
        self,
        input_size=768,
        num_layers=13,
        num_heads=64,
        compression_dim=128,
        embedding_size=256,
        layer_aggregation="weighted_sum",
        lap_channels=512,
        lap_num_heads=16,
        lap_dropout=0.1,
        init="pytorch",
    ):
        super().__init__()
        check_init(init)
        if layer_aggregation not in LAYER_AGGREGATIONS:
            raise ValueError(
                f"layer_aggregation must be one of {LAYER_AGGREGATIONS}, "
                f"got {layer_aggregation!r}"
            )
        self.input_size = input_size
        self.num_layers = num_layers
        self.layer_aggregation = layer_aggregation
        if layer_aggregation == "lap":
            lap_sizes = (input_size, num_layers, lap_channels, lap_num_heads)
            self.key_aggregation = LayerAttentivePooling(
                *lap_sizes, dropout=lap_dropout
            )
            self.value_aggregation = LayerAttentivePooling(
                *lap_sizes, dropout=lap_dropout
            )
            aggregated_size = lap_channels
        else:
            # Zeros: every layer weighs the same at the start, as the
            # authors' all-ones (or 1/L) initialisation gives after the
            # softmax.
            self.key_layer_weights = nn.Parameter(torch.zeros(num_layers))
            self.value_layer_weights = nn.Parameter(torch.zeros(num_layers))
            aggregated_size = input_size
        self.key_compression = nn.Linear(aggregated_size, compression_dim)
        self.value_compression = nn.Linear(aggregated_size, compression_dim)
        self.attention_heads = nn.Linear(compression_dim, num_heads)
        self.projection = nn.Linear(num_heads * compression_dim, embedding_size)
        if init == "authors":
            authors_init_(self)

    @property
    def layer_weights(self):
        """The key and value layer weights after the softmax, ``[2, L]``.

        Only with ``layer_aggregation="weighted_sum"``: LAP's layer weights
        depend on the frame.
        """
        if self.layer_aggregation != "weighted_sum":
            raise AttributeError(
                "MHFA with layer_aggregation='lap' has no static layer weights"
            )
        weights = torch.stack(
            (self.key_layer_weights, self.value_layer_weights)
        )
        return weights.detach().softmax(dim=-1)

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
        batch, _, frames, _ = check_hidden_states(
            hidden_states, self.num_layers, self.input_size
        )
        mask = frame_mask(lengths, frames, batch)
        keys, values = self._aggregate(hidden_states, mask)
        keys = self.key_compression(keys)
        values = self.value_compression(values)
        scores = self.attention_heads(keys)  # [B, T, H]
        if mask is not None:
            valid = mask.unsqueeze(-1)
            scores = scores.masked_fill(~valid, torch.finfo(scores.dtype).min)
            # A zero weight times an inf or NaN in a padded frame is NaN.
            values = torch.where(valid, values, 0.0)
        attention = scores.softmax(dim=1)
        pooled = torch.einsum("bth,btc->bhc", attention, values)
        return self.projection(pooled.reshape(batch, -1)).unsqueeze(1)

    def _aggregate(self, hidden_states, mask):
        """The key and value sequences over layers, ``[B, T, D']`` each."""
        if self.layer_aggregation == "lap":
            return tuple(
                pool_layers_per_frame(aggregation, hidden_states, mask)
                for aggregation in (
                    self.key_aggregation,
                    self.value_aggregation,
                )
            )
        key_weights = self.key_layer_weights.softmax(dim=0)
        value_weights = self.value_layer_weights.softmax(dim=0)
        keys = torch.einsum("l,bltd->btd", key_weights, hidden_states)
        values = torch.einsum("l,bltd->btd", value_weights, hidden_states)
        return keys, values
