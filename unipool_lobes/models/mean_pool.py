"""One layer of an SSL model, mean-pooled over its valid frames.

The backend of two of the paper's baselines: ExploreWV2 (Fan et al. 2021,
"Exploring wav2vec 2.0 on speaker verification and language
identification") averages the output of the first transformer layer, and
FinetuneWV2 (Vaessen & van Leeuwen 2022, "Fine-tuning wav2vec2 for speaker
recognition") pools the last one. The module also holds
:func:`check_hidden_states`, the input check that every multi-layer backend
of this package shares.

Authors
 * unipool-sv developers 2026
"""

import torch
from torch import nn

from unipool_lobes.nnet.masking import frame_mask

__all__ = ["LayerMeanPool", "check_hidden_states"]


def check_hidden_states(hidden_states, num_layers=None, input_size=None):
    """Checks that a backend input is ``[B, L, T, D]`` with the right sizes.

    Arguments
    ---------
    hidden_states : torch.Tensor
        The stacked hidden states of an SSL model, ``[B, L, T, D]``.
    num_layers : int, optional
        The number of layers ``L`` the backend was built for.
    input_size : int, optional
        The feature size ``D`` the backend was built for.

    Returns
    -------
    shape : torch.Size
        ``hidden_states.shape``.

    Raises
    ------
    ValueError
        If the tensor is not 4-D or ``L`` or ``D`` differ from the expected.

    Example
    -------
    >>> check_hidden_states(torch.zeros(2, 13, 50, 768), 13, 768)
    torch.Size([2, 13, 50, 768])
    """
    if hidden_states.dim() != 4:
        raise ValueError(
            "hidden_states must be [batch, layers, frames, features], got "
            f"shape {tuple(hidden_states.shape)}"
        )
    _, layers, _, features = hidden_states.shape
    if num_layers is not None and layers != num_layers:
        raise ValueError(
            f"the backend was built for num_layers={num_layers} hidden "
            f"states, got {layers} (shape {tuple(hidden_states.shape)})"
        )
    if input_size is not None and features != input_size:
        raise ValueError(
            f"the backend was built for input_size={input_size} features, "
            f"got {features} (shape {tuple(hidden_states.shape)})"
        )
    return hidden_states.shape


class LayerMeanPool(nn.Module):
    """Selects one hidden state, averages its valid frames, projects.

    Index 0 of the input is the CNN output of the SSL model and index ``i``
    the output of transformer layer ``i``: ExploreWV2 uses
    ``layer_index=1`` (the first transformer layer), FinetuneWV2 the last
    (``-1``, the default).

    Arguments
    ---------
    input_size : int
        Feature size ``D`` of the hidden states.
    layer_index : int
        Which hidden state to pool (Python indexing, so ``-1`` is the last).
    embedding_size : int, optional
        If given, a linear layer ``D -> embedding_size`` follows the mean;
        None (default) returns the mean itself (``E = D``).
    pooling : str
        ``mean`` (default): the mean of the valid frames; ``cls``: frame 0
        alone, the output at the CLS frame that ``MultiLayerSSL(cls_frame=
        True)`` prepends (FinetuneWV2 as the UniPool authors run it).

    Example
    -------
    >>> pool = LayerMeanPool(input_size=32, layer_index=1, embedding_size=8)
    >>> hidden_states = torch.randn(2, 3, 20, 32)
    >>> pool(hidden_states, torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 1, 8])
    """

    def __init__(
        self, input_size, layer_index=-1, embedding_size=None, pooling="mean"
    ):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling: {pooling!r} is not one of mean, cls")
        self.pooling = pooling
        self.input_size = input_size
        self.layer_index = layer_index
        if embedding_size is None:
            self.projection = nn.Identity()
        else:
            self.projection = nn.Linear(input_size, embedding_size)

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

        Raises
        ------
        ValueError
            For a badly shaped input, a ``layer_index`` outside the ``L``
            hidden states, or lengths outside (0, 1].
        """
        batch, layers, frames, _ = check_hidden_states(
            hidden_states, input_size=self.input_size
        )
        if not -layers <= self.layer_index < layers:
            raise ValueError(
                f"layer_index={self.layer_index} is outside the {layers} "
                "hidden states of the input"
            )
        layer = hidden_states[:, self.layer_index]
        mask = frame_mask(lengths, frames, batch)
        if self.pooling == "cls":
            mean = layer[:, 0]
        elif mask is None:
            mean = layer.mean(dim=1)
        else:
            valid = mask.unsqueeze(-1)
            # where, not a product: padded frames may hold inf or NaN.
            total = torch.where(valid, layer, 0.0).sum(dim=1)
            mean = total / valid.sum(dim=1).to(layer.dtype)
        return self.projection(mean).unsqueeze(1)
