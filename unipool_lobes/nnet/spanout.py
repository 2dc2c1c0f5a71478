"""Span-out: the UniPool authors' frame-dropping augmentation.

In training, an utterance is chosen with probability ``utterance_prob``;
in it every frame starts a dropped span with probability ``start_prob``,
a span covering ``span_length`` frames from its start. The dropped frames
are removed and the rest closed up, so the utterance gets shorter (about
15 % with the authors' 0.05 and 3). It acts on the stacked hidden states
of every layer at once, before the backend.

Authors
 * unipool-sv developers 2026
"""

import torch


def span_out(
    hidden_states,
    lengths=None,
    utterance_prob=0.3,
    start_prob=0.05,
    span_length=3,
    generator=None,
):
    """Drops random spans of frames and closes the gaps.

    Arguments
    ---------
    hidden_states : torch.Tensor
        ``[B, L, T, D]`` features of every layer.
    lengths : torch.Tensor, optional
        ``[B]`` relative lengths; None means no padding.
    utterance_prob : float
        Probability that an utterance is augmented at all.
    start_prob : float
        Probability that a frame starts a dropped span.
    span_length : int
        Frames per dropped span.
    generator : torch.Generator, optional
        Source of randomness (the global one by default).

    Returns
    -------
    hidden_states : torch.Tensor
        ``[B, L, T', D]`` with ``T'`` the longest kept length; each
        utterance's kept frames first, in order, then zeros.
    lengths : torch.Tensor
        ``[B]`` relative lengths of the kept frames (an utterance that
        would lose every frame is kept whole).

    Example
    -------
    >>> x = torch.arange(10.0).reshape(1, 1, 10, 1)
    >>> g = torch.Generator().manual_seed(1)
    >>> y, lengths = span_out(
    ...     x, utterance_prob=1.0, start_prob=0.2, generator=g
    ... )
    >>> y.flatten().tolist(), lengths.tolist()
    ([0.0, 1.0, 2.0, 3.0, 7.0, 8.0, 9.0], [1.0])
    """
    batch, _, frames, _ = hidden_states.shape
    device = hidden_states.device
    if lengths is None:
        valid_counts = torch.full((batch,), frames, device=device)
    else:
        valid_counts = torch.round(lengths.to(device) * frames).long()
    valid = torch.arange(frames, device=device) < valid_counts[:, None]

    starts = torch.rand(batch, frames, generator=generator) < start_prob
    dropped = starts.clone()
    for shift in range(1, span_length):
        dropped[:, shift:] |= starts[:, :-shift]
    keep = valid & ~dropped.to(device)
    augmented = torch.rand(batch, generator=generator) < utterance_prob
    augmented = augmented.to(device) & keep.any(dim=1)
    keep = torch.where(augmented[:, None], keep, valid)

    kept_counts = keep.sum(dim=1)
    # Kept frames first, in their order: a stable sort of "dropped" flags.
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    new_frames = int(kept_counts.max())
    order = order[:, :new_frames]
    index = order[:, None, :, None].expand(
        -1, hidden_states.shape[1], -1, hidden_states.shape[3]
    )
    compacted = hidden_states.gather(2, index)
    new_valid = torch.arange(new_frames, device=device) < kept_counts[:, None]
    compacted = compacted * new_valid[:, None, :, None].to(compacted.dtype)
    return compacted, kept_counts.to(hidden_states.dtype) / new_frames
