"""Filterbank features with lengths, for the x-vector and ECAPA baselines.

The filterbank baselines of the paper (x-vector, ECAPA-TDNN) train from
scratch on log Mel filterbanks. :class:`FbankFrontEnd` gives them the
interface of the SSL front-end, ``front_end(wav, wav_lens) -> (features,
lengths)``, so they run in the same training script; then
``embedding_model(features, lengths)`` works with SpeechBrain's ``Xvector``
(``lens``) and ``ECAPA_TDNN`` (``lengths``) alike.

Authors
 * unipool-sv developers 2026
"""

import torch
from speechbrain.lobes.features import Fbank
from speechbrain.processing.features import (
    InputNormalization,
    spectral_magnitude,
)
from torch import nn

from unipool_lobes.nnet.masking import frame_mask

__all__ = ["FbankFrontEnd"]


class FbankFrontEnd(nn.Module):
    """Waveforms and relative lengths to normalised filterbanks and lengths.

    SpeechBrain's ``Fbank`` (its STFT and Mel filterbank, centred frames,
    zero padding at the edges), then, optionally, SpeechBrain's sentence
    mean (and variance) normalisation over each utterance's valid frames.
    Each utterance's valid frames are those it would have alone,
    ``1 + samples // hop``, and they are the same alone or in a padded
    batch: padded samples are zeroed first (which is what the STFT's own
    edge padding puts there), and the magnitudes of frames past each end
    are zeroed before the filterbank, so that they cannot set the
    utterance's maximum for the filterbank's ``top_db`` floor.

    Arguments
    ---------
    n_mels : int
        Number of Mel filters (80 for ECAPA-TDNN, 24 for the x-vector in
        SpeechBrain's VoxCeleb recipes).
    sample_rate : int
        Sample rate of the waveforms.
    win_length : float
        Window length in milliseconds.
    hop_length : float
        Hop length in milliseconds.
    n_fft : int
        FFT size.
    f_min : float
        Lowest filter frequency in Hz.
    f_max : float, optional
        Highest filter frequency in Hz (None: half the sample rate).
    mean_norm : bool
        Subtract each utterance's mean over its valid frames.
    std_norm : bool
        Also divide by each utterance's standard deviation (needs
        ``mean_norm``).

    Example
    -------
    >>> front_end = FbankFrontEnd(n_mels=24)
    >>> wav = torch.randn(2, 16000)
    >>> feats, lens = front_end(wav, torch.tensor([1.0, 0.5]))
    >>> feats.shape, lens
    (torch.Size([2, 101, 24]), tensor([1.0000, 0.5050]))
    """

    def __init__(
        self,
        n_mels=80,
        sample_rate=16000,
        win_length=25,
        hop_length=10,
        n_fft=400,
        f_min=0,
        f_max=None,
        mean_norm=True,
        std_norm=False,
    ):
        super().__init__()
        if std_norm and not mean_norm:
            raise ValueError("std_norm=True needs mean_norm=True")
        self.fbank = Fbank(
            n_mels=n_mels,
            sample_rate=sample_rate,
            win_length=win_length,
            hop_length=hop_length,
            n_fft=n_fft,
            f_min=f_min,
            f_max=f_max,
        )
        self.normalize = None
        if mean_norm:
            self.normalize = InputNormalization(
                norm_type="sentence", std_norm=std_norm
            )

    @property
    def hop_samples(self):
        """The hop between frames, in samples."""
        return self.fbank.compute_STFT.hop_length

    def forward(self, wav, wav_lens=None):
        """Returns the features and their relative lengths.

        Arguments
        ---------
        wav : torch.Tensor
            ``[B, S]`` waveforms.
        wav_lens : torch.Tensor, optional
            ``[B]`` lengths relative to ``S``; None means all full.

        Returns
        -------
        feats : torch.Tensor
            ``[B, T, n_mels]`` features, ``T = 1 + S // hop``.
        feat_lens : torch.Tensor
            ``[B]`` valid frames relative to ``T``.

        Raises
        ------
        ValueError
            If ``wav`` is not ``[B, S]`` or the lengths are not in (0, 1].
        """
        if wav.dim() != 2:
            raise ValueError(
                f"wav must be [batch, samples], got {tuple(wav.shape)}"
            )
        batch, num_samples = wav.shape
        sample_mask = frame_mask(wav_lens, num_samples, batch)
        with torch.autocast(device_type=wav.device.type, enabled=False):
            wav = wav.float()
            if sample_mask is not None:
                wav = torch.where(sample_mask, wav, 0.0)
            magnitude = spectral_magnitude(self.fbank.compute_STFT(wav))
            num_frames = magnitude.shape[1]
            if sample_mask is None:
                counts = torch.full((batch,), num_frames, device=wav.device)
            else:
                counts = 1 + sample_mask.sum(dim=1) // self.hop_samples
                valid = (
                    torch.arange(num_frames, device=wav.device)
                    < counts[:, None]
                )
                magnitude = torch.where(valid.unsqueeze(-1), magnitude, 0.0)
            feats = self.fbank.compute_fbanks(magnitude)
            if self.normalize is not None:
                # SpeechBrain counts frames t < length * T - 1e-6, which the
                # float error of n / T can push past n; n - 0.5 cannot.
                safe_lengths = (counts.float() - 0.5) / num_frames
                feats = self.normalize(feats, safe_lengths)
        return feats, counts.float() / num_frames
