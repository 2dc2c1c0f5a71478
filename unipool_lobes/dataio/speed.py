"""Speed perturbation with one class per factor, as the LAP authors do.

Applied to the whole utterance before cropping: a factor drawn from a list
(``1.0, 1.0, 1.0, 0.9, 1.1``) resamples the signal from ``factor * rate``
to ``rate`` (0.9 is slower and lower) and gives a class offset (0 for
1.0, then 1, 2, ...), so each perturbed version of a speaker is a class of
its own. See :mod:`unipool_lobes.dataio.augment` for why SpeechBrain's
``SpeedPerturb`` is not used.

Authors
 * unipool-sv developers 2026
"""

import math

import torch
from speechbrain.augment.time_domain import Resample

from unipool_lobes.dataio.mixing import _as_1d

__all__ = ["SpeedPerturbation"]


class SpeedPerturbation:
    """Speed perturbation with one class per factor, as the LAP authors do.

    A factor is drawn uniformly from ``factors`` (repeats weight it: the
    default gives 1.0 a chance of 0.6, 0.9 and 1.1 0.2 each). A factor
    other than 1.0 resamples the signal from ``factor * sample_rate`` to
    ``sample_rate`` (ratios reduced by their gcd: 9 -> 10 for 0.9, 11 -> 10
    for 1.1) and plays it at ``sample_rate``: 0.9 is slower and lower,
    and ``N`` samples become ``ceil(N / 0.9)``. Each distinct factor is a
    class offset: 0 for 1.0, then 1, 2, ... for the other factors in the
    order they first appear in ``factors`` (the authors' CPython set order
    for 0.9 and 1.1); a speaker's label becomes ``label + n_speakers *
    offset``. ``factor * sample_rate`` is rounded to an integer (the
    authors truncate it, which gives the same ratios for 0.9 and 1.1).

    Arguments
    ---------
    factors : sequence of float
        The factors to draw from; must hold 1.0 (offset 0).
    sample_rate : int
        The signal's sample rate (Hz).

    Example
    -------
    >>> speed = SpeedPerturbation()
    >>> speed.classes_per_speaker, speed.offsets
    (3, {1.0: 0, 0.9: 1, 1.1: 2})
    >>> signal, offset = speed(torch.randn(16000), torch.Generator())
    >>> (signal.shape[0], offset) in {(16000, 0), (17778, 1), (14546, 2)}
    True
    """

    def __init__(self, factors=(1.0, 1.0, 1.0, 0.9, 1.1), sample_rate=16000):
        factors = tuple(float(factor) for factor in factors)
        if not factors:
            raise ValueError("speed perturbation: no factors given")
        if any(not factor > 0 for factor in factors):
            raise ValueError(
                f"speed perturbation: factors must be positive, got {factors}"
            )
        if 1.0 not in factors:
            raise ValueError(
                f"speed perturbation: factors {factors} lack 1.0, the "
                "unperturbed class (offset 0)"
            )
        self.factors = factors
        self.sample_rate = int(sample_rate)
        distinct = [1.0] + [f for f in dict.fromkeys(factors) if f != 1.0]
        self.offsets = {
            factor: offset for offset, factor in enumerate(distinct)
        }
        self.classes_per_speaker = len(distinct)
        self.resamplers = {}
        for factor in distinct[1:]:
            source = round(factor * self.sample_rate)
            if source <= 0:
                raise ValueError(f"speed factor {factor} is too small")
            divisor = math.gcd(source, self.sample_rate)
            self.resamplers[factor] = Resample(
                orig_freq=source // divisor,
                new_freq=self.sample_rate // divisor,
            )

    def draw(self, generator=None):
        """Draws a factor.

        Arguments
        ---------
        generator : torch.Generator, optional
            Source of randomness (torch's global one by default).

        Returns
        -------
        float
            One of ``factors``, uniformly.

        Example
        -------
        >>> SpeedPerturbation((1.0,)).draw()
        1.0
        """
        index = int(torch.randint(len(self.factors), (), generator=generator))
        return self.factors[index]

    def perturb(self, signal, factor):
        """Applies one factor.

        Arguments
        ---------
        signal : torch.Tensor
            ``[time]`` samples at ``sample_rate``.
        factor : float
            One of ``factors``.

        Returns
        -------
        torch.Tensor
            The resampled signal (the input itself for 1.0).

        Example
        -------
        >>> speed = SpeedPerturbation()
        >>> speed.perturb(torch.randn(9000), 0.9).shape
        torch.Size([10000])
        """
        signal = _as_1d(signal)
        if factor not in self.offsets:
            raise ValueError(
                f"speed factor {factor} is not one of {self.factors}"
            )
        if factor == 1.0:
            return signal
        resampler = self.resamplers[factor]
        return resampler(signal.unsqueeze(0)).squeeze(0)

    def __call__(self, signal, generator=None):
        """Draws a factor and applies it.

        Arguments
        ---------
        signal : torch.Tensor
            ``[time]`` samples at ``sample_rate``.
        generator : torch.Generator, optional
            Source of randomness (torch's global one by default).

        Returns
        -------
        signal : torch.Tensor
            The perturbed ``[time']`` signal.
        class_offset : int
            The factor's class offset (0 for 1.0).
        """
        factor = self.draw(generator)
        return self.perturb(signal, factor), self.offsets[factor]
