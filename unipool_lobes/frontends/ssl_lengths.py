"""Lengths, masks and waveform normalisation of the SSL front-end.

Relative lengths become lengths in samples (checked), lengths become
boolean masks, and :func:`normalize_waveforms` normalises each utterance
over its own samples only, as HF's feature extractor computes it, so that
padding never leaks into a valid sample.

Authors
 * unipool-sv developers 2026
"""

import torch

__all__ = ["NORMALIZE_EPS", "normalize_waveforms"]

# HF's feature extractor adds this to the variance before the square root.
NORMALIZE_EPS = 1e-7


def normalize_waveforms(wav, sample_lens):
    """Zero mean, unit variance per utterance over its true samples.

    As HF's feature extractor: ``(x - mean) / sqrt(var + 1e-7)`` with the
    biased variance of the first ``length`` samples; padding stays zero.

    Arguments
    ---------
    wav : torch.Tensor
        ``[B, S]`` waveforms.
    sample_lens : torch.Tensor
        ``[B]`` lengths in samples.

    Returns
    -------
    torch.Tensor
        ``[B, S]`` normalised waveforms, zero after each length.

    Example
    -------
    >>> wav = torch.tensor([[1.0, 3.0, 9.0], [2.0, 2.0, 2.0]])
    >>> normalize_waveforms(wav, torch.tensor([2, 3]))
    tensor([[-1.0000,  1.0000,  0.0000],
            [ 0.0000,  0.0000,  0.0000]])
    """
    mask = _lengths_to_mask(sample_lens, wav.shape[1])
    # float64 statistics: sums over long utterances stay exact enough that
    # an utterance alone and in a batch agree.
    wav64 = wav.double() * mask
    count = sample_lens.to(wav64.dtype).unsqueeze(1)
    mean = wav64.sum(dim=1, keepdim=True) / count
    centred = torch.where(mask, wav64 - mean, 0.0)
    var = centred.square().sum(dim=1, keepdim=True) / count
    return (centred / torch.sqrt(var + NORMALIZE_EPS)).to(wav.dtype)


def _absolute_lengths(wav, wav_lens):
    """Relative lengths -> lengths in samples, with checks."""
    if wav.dim() != 2:
        raise ValueError(
            f"wav must be [batch, samples], got shape {tuple(wav.shape)}"
        )
    batch, num_samples = wav.shape
    if wav_lens is None:
        return torch.full((batch,), num_samples, device=wav.device)
    wav_lens = torch.as_tensor(wav_lens, device=wav.device)
    if wav_lens.shape != (batch,):
        raise ValueError(
            f"wav_lens must have shape ({batch},), got {tuple(wav_lens.shape)}"
        )
    if bool(((wav_lens <= 0) | (wav_lens > 1 + 1e-6)).any()):
        raise ValueError(
            f"wav_lens must be relative lengths in (0, 1], got {wav_lens}"
        )
    lengths = torch.round(wav_lens.double() * num_samples).long()
    return lengths.clamp(1, num_samples)


def _lengths_to_mask(lengths, max_length):
    """``[B]`` lengths -> ``[B, max_length]`` bool mask, True = valid."""
    positions = torch.arange(max_length, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)
