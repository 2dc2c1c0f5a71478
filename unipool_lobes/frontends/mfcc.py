"""MFCC features as the UniPool authors compute them for their baselines.

Their x-vector (24 coefficients) and ECAPA-TDNN (80 coefficients) take
``torchaudio.transforms.MFCC`` of the pre-emphasised waveform (0.97, the
first sample reflected), 80 Mel bands from a 512-point FFT of 25 ms
Hamming windows every 10 ms over 20-7600 Hz, power in dB with an 80 dB
floor below the maximum, then an orthonormal DCT. The x-vector normalises
each coefficient over the utterance (mean and standard deviation), the
ECAPA-TDNN each frame to unit L2 norm.

Quirk of the original: torchaudio's dB floor, given a batch ``[B, mels,
T]``, takes the maximum over the *whole batch*, so in the authors'
training (batches of 128 crops) the floor of a quiet crop is set by the
loudest crop of its batch, while their evaluation (one utterance at a
time) floors each utterance by its own maximum. ``db_floor="batch"``
reproduces that (batch floor in training mode, utterance floor in eval
mode); ``"utterance"`` floors each utterance by itself always.

Each utterance is computed from its own samples (utterances of equal
length together, so equal training crops stay one batched call), so that
an utterance gives the same features alone or in a padded batch.

Authors
 * unipool-sv developers 2026
"""

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from unipool_lobes.nnet.masking import frame_mask

__all__ = ["MFCCFrontEnd", "pre_emphasis"]

NORMALIZATIONS = ("mean_var", "frame_l2", "none")
DB_FLOORS = ("batch", "utterance")


def pre_emphasis(wav, coefficient=0.97):
    """Pre-emphasis ``y[t] = x[t] - c x[t - 1]``, the first sample reflected.

    Arguments
    ---------
    wav : torch.Tensor
        ``[B, S]`` waveforms (``S >= 2``).
    coefficient : float
        The filter coefficient ``c``.

    Returns
    -------
    torch.Tensor
        ``[B, S]``; ``y[0] = x[0] - c x[1]`` (reflection), as the authors'
        (TaoRuijie's) ``PreEmphasis``.

    Example
    -------
    >>> pre_emphasis(torch.tensor([[1.0, 2.0, 4.0]]), 0.5)
    tensor([[0.0000, 1.5000, 3.0000]])
    """
    previous = torch.cat([wav[:, 1:2], wav[:, :-1]], dim=1)
    return wav - coefficient * previous


class MFCCFrontEnd(nn.Module):
    """Waveforms and relative lengths to the authors' MFCCs and lengths.

    Arguments
    ---------
    n_mfcc : int
        Coefficients kept (24 for the x-vector, 80 for the ECAPA-TDNN).
    sample_rate : int
        Sample rate of the waveforms.
    n_mels : int
        Mel bands.
    n_fft : int
        FFT size.
    win_length : float
        Window length in milliseconds (Hamming window).
    hop_length : float
        Hop in milliseconds.
    f_min : float
        Lowest band edge in Hz.
    f_max : float
        Highest band edge in Hz.
    pre_emphasis_coefficient : float
        Pre-emphasis; 0 turns it off.
    top_db : float
        The dB floor below the maximum.
    db_floor : str
        ``batch`` (the authors': the floor from the whole batch's maximum
        in training mode, from each utterance's in eval mode) or
        ``utterance`` (always each utterance's own).
    normalization : str
        ``mean_var`` (each coefficient over the utterance's frames: minus
        the mean, over the standard deviation, the biased one, floored at
        1e-8), ``frame_l2`` (each frame to unit L2 norm) or ``none``.

    Example
    -------
    >>> front_end = MFCCFrontEnd(n_mfcc=24)
    >>> wav = torch.randn(2, 16000)
    >>> feats, lens = front_end(wav, torch.tensor([1.0, 0.5]))
    >>> feats.shape, lens
    (torch.Size([2, 101, 24]), tensor([1.0000, 0.5050]))
    """

    def __init__(
        self,
        n_mfcc=24,
        sample_rate=16000,
        n_mels=80,
        n_fft=512,
        win_length=25,
        hop_length=10,
        f_min=20,
        f_max=7600,
        pre_emphasis_coefficient=0.97,
        top_db=80.0,
        db_floor="batch",
        normalization="mean_var",
    ):
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization: {normalization!r} is not one of "
                f"{', '.join(NORMALIZATIONS)}"
            )
        if db_floor not in DB_FLOORS:
            raise ValueError(
                f"db_floor: {db_floor!r} is not one of {', '.join(DB_FLOORS)}"
            )
        self.hop_samples = int(round(sample_rate * hop_length / 1000))
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            win_length=int(round(sample_rate * win_length / 1000)),
            hop_length=self.hop_samples,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            window_fn=torch.hamming_window,
        )
        self.register_buffer(
            "dct",
            torchaudio.functional.create_dct(n_mfcc, n_mels, "ortho"),
            persistent=False,
        )
        self.pre_emphasis_coefficient = pre_emphasis_coefficient
        self.top_db = top_db
        self.db_floor = db_floor
        self.normalization = normalization

    def _decibels(self, wav):
        """``[B, S]`` valid samples -> ``[B, T, mels]`` power in dB."""
        if self.pre_emphasis_coefficient:
            wav = pre_emphasis(wav, self.pre_emphasis_coefficient)
        power = self.mel(wav).transpose(1, 2)
        return 10.0 * torch.log10(power.clamp(min=1e-10))

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
            ``[B, T, n_mfcc]``, ``T = 1 + S // hop``; zeros past each end.
        feat_lens : torch.Tensor
            ``[B]`` valid frames relative to ``T``.

        Raises
        ------
        ValueError
            If ``wav`` is not ``[B, S]``.
        """
        if wav.dim() != 2:
            raise ValueError(
                f"wav must be [batch, samples], got {tuple(wav.shape)}"
            )
        batch, num_samples = wav.shape
        sample_mask = frame_mask(wav_lens, num_samples, batch)
        if sample_mask is None:
            sample_lens = torch.full((batch,), num_samples)
        else:
            sample_lens = sample_mask.sum(dim=1).cpu()
        counts = 1 + sample_lens // self.hop_samples
        num_frames = 1 + num_samples // self.hop_samples
        with torch.autocast(device_type=wav.device.type, enabled=False):
            wav = wav.float()
            groups = []
            for length in torch.unique(sample_lens).tolist():
                rows = (sample_lens == length).nonzero().flatten()
                groups.append((rows, self._decibels(wav[rows, :length])))
            if self.db_floor == "batch" and self.training:
                peak = max(float(group.amax()) for _, group in groups)
                groups = [
                    (rows, group.clamp(min=peak - self.top_db))
                    for rows, group in groups
                ]
            else:
                groups = [
                    (
                        rows,
                        torch.maximum(
                            group,
                            group.amax(dim=(1, 2), keepdim=True) - self.top_db,
                        ),
                    )
                    for rows, group in groups
                ]
            feats = wav.new_zeros(batch, num_frames, self.dct.shape[1])
            for rows, group in groups:
                coefficients = self._normalise(group @ self.dct)
                feats[rows.to(wav.device), : group.shape[1]] = coefficients
        return feats, counts.float().to(wav.device) / num_frames

    def _normalise(self, coefficients):
        """Normalises ``[B, T, n_mfcc]`` features of equal-length items."""
        if self.normalization == "mean_var":
            mean = coefficients.mean(dim=1, keepdim=True)
            std = coefficients.std(dim=1, keepdim=True, correction=0)
            return (coefficients - mean) / std.clamp(min=1e-8)
        if self.normalization == "frame_l2":
            return F.normalize(coefficients, dim=2)
        return coefficients
