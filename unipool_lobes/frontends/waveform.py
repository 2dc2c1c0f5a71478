"""The raw waveform as the features, for backends that read samples.

The training script calls ``front_end(wav, wav_lens)`` before the
backend. Systems that learn from the waveform itself (SincNet) need a
front-end that changes nothing but the padding: :class:`WaveformFrontEnd`
zeroes the samples past each utterance's end and returns the lengths.

Authors
 * unipool-sv developers 2026
"""

import torch
from torch import nn

from unipool_lobes.nnet.masking import frame_mask

__all__ = ["WaveformFrontEnd"]


class WaveformFrontEnd(nn.Module):
    """Waveforms and relative lengths in, the same out, padding zeroed.

    Each utterance covers ``round(length * S)`` samples (at least one);
    the samples after it are set to zero, so nothing downstream can read
    another utterance's padding. It has no parameters.

    Example
    -------
    >>> front_end = WaveformFrontEnd()
    >>> wav = torch.ones(2, 4)
    >>> samples, lens = front_end(wav, torch.tensor([1.0, 0.5]))
    >>> samples
    tensor([[1., 1., 1., 1.],
            [1., 1., 0., 0.]])
    >>> lens
    tensor([1.0000, 0.5000])
    """

    def forward(self, wav, wav_lens=None):
        """Returns the waveforms with zeroed padding and their lengths.

        Arguments
        ---------
        wav : torch.Tensor
            ``[B, S]`` waveforms.
        wav_lens : torch.Tensor, optional
            ``[B]`` lengths relative to ``S``; None means all full.

        Returns
        -------
        samples : torch.Tensor
            ``[B, S]`` waveforms, zero after each length.
        lens : torch.Tensor
            ``[B]`` relative lengths (ones when ``wav_lens`` is None).

        Raises
        ------
        ValueError
            If ``wav`` is not ``[B, S]`` or the lengths are not in (0, 1].
        """
        if wav.dim() != 2:
            raise ValueError(
                f"wav must be [batch, samples], got shape {tuple(wav.shape)}"
            )
        batch, num_samples = wav.shape
        mask = frame_mask(wav_lens, num_samples, batch)
        if wav_lens is None:
            wav_lens = torch.ones(batch, device=wav.device)
        if mask is not None:
            wav = torch.where(mask, wav, 0.0)
        return wav, wav_lens
