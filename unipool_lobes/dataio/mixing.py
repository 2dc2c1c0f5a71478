"""Signal levels, SNR gains and convolution of the waveform augmentation.

The level of a signal is ``10 log10(mean(x^2) + 1e-4)`` dB, as the LAP
authors measure it (:func:`signal_power`); a noise is scaled by
``sqrt(10^((P_clean - P_noise - SNR) / 10))`` (:func:`snr_gain`);
reverberation keeps the first samples of the full linear convolution
(:func:`convolve_head`). The private helpers draw one number from a
``torch.Generator`` and check or down-mix waveforms, for
:mod:`unipool_lobes.dataio.augment` and :mod:`unipool_lobes.dataio.speed`.

Authors
 * unipool-sv developers 2026
"""

import math

import torch
from scipy.fft import next_fast_len

__all__ = ["POWER_FLOOR", "convolve_head", "signal_power", "snr_gain"]

# Added inside the log of the power, as the authors do (silence: -40 dB).
POWER_FLOOR = 1e-4


def signal_power(signal):
    """Level of a signal in dB, as the authors measure it.

    Arguments
    ---------
    signal : torch.Tensor
        ``[time]`` samples.

    Returns
    -------
    float
        ``10 log10(mean(signal^2) + 1e-4)``, computed in float64.

    Example
    -------
    >>> round(signal_power(torch.zeros(100)), 6)
    -40.0
    >>> round(signal_power(torch.ones(100)), 4)
    0.0004
    """
    samples = signal.reshape(-1).to(torch.float64)
    mean_square = torch.dot(samples, samples).item() / max(1, samples.numel())
    return 10.0 * math.log10(mean_square + POWER_FLOOR)


def snr_gain(reference_power, noise_power, snr):
    """Amplitude factor that puts a noise ``snr`` dB under a reference.

    Arguments
    ---------
    reference_power : float
        Level of the reference (clean) signal, dB (:func:`signal_power`).
    noise_power : float
        Level of the noise, dB.
    snr : float
        Wanted signal-to-noise ratio, dB.

    Returns
    -------
    float
        ``sqrt(10^((reference_power - noise_power - snr) / 10))``.

    Example
    -------
    >>> snr_gain(0.0, 0.0, 20.0)
    0.1
    """
    return math.sqrt(10.0 ** ((reference_power - noise_power - snr) / 10.0))


def convolve_head(signal, kernel):
    """First ``len(signal)`` samples of the full linear convolution.

    By FFT, at the smallest fast length (``scipy.fft.next_fast_len``) of
    at least ``len(signal) + len(kernel) - 1`` points, so nothing wraps
    around. ``torchaudio.functional.fftconvolve`` computes the same at
    exactly that many points, which can be a slow FFT length: 47,999 (7 x
    6,857) for a 2 s crop and a 1 s RIR, about ten times slower.

    Arguments
    ---------
    signal : torch.Tensor
        ``[time]`` samples.
    kernel : torch.Tensor
        ``[taps]`` impulse response.

    Returns
    -------
    torch.Tensor
        ``[time]``, ``signal``'s dtype.

    Example
    -------
    >>> convolve_head(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 1.0]))
    tensor([1., 3., 5.])
    """
    n_samples = signal.shape[0]
    size = next_fast_len(n_samples + kernel.shape[0] - 1, real=True)
    spectrum = torch.fft.rfft(signal, size) * torch.fft.rfft(kernel, size)
    out = torch.fft.irfft(spectrum, size)[:n_samples]
    return out.to(signal.dtype).contiguous()


def _uniform(low, high, generator):
    """One float drawn uniformly in ``[low, high)``."""
    draw = torch.rand((), generator=generator, dtype=torch.float64).item()
    return low + (high - low) * draw


def _integer(low, high, generator):
    """One integer drawn uniformly in ``[low, high]`` (both included)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def _as_1d(signal):
    """Checks that ``signal`` is a non-empty 1-D tensor."""
    if not isinstance(signal, torch.Tensor) or signal.dim() != 1:
        shape = getattr(signal, "shape", type(signal).__name__)
        raise ValueError(f"expected a 1-D waveform tensor, got {shape}")
    if signal.numel() == 0:
        raise ValueError("cannot augment an empty waveform")
    return signal


def _mono(audio):
    """``[channels, time]`` down-mixed to ``[time]`` (a view when mono)."""
    return audio[0] if audio.shape[0] == 1 else audio.mean(dim=0)
