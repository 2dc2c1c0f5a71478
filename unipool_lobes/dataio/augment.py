"""Waveform augmentation of the LAP authors' training pipeline.

Applied on the fly to one training item at a time, in the data-loader
workers: 1-D tensors in, 1-D tensors out. Two steps, as the authors run
them (LAP ``src/utils/dataset.py``):

* :class:`SpeedPerturbation`, on the whole utterance before cropping: a
  factor drawn from a list (``1.0, 1.0, 1.0, 0.9, 1.1``) resamples the
  signal from ``factor * rate`` to ``rate`` (0.9 is slower and lower) and
  gives a class offset (0 for 1.0, then 1, 2, ...), so each perturbed
  version of a speaker is a class of its own;
* :class:`WaveformAugmenter`, on the fixed-length crop: with probability
  0.6 one of reverb, noise, music, babble and "television" (babble, then
  music), chosen with equal chance; the output has the input's length.

Noise windows come from a MUSAN manifest and RIRs from a RIRS_NOISES
manifest, as :func:`data_prep.noise_corpora.prepare_noise_corpora` writes
them. The level of a signal is ``10 log10(mean(x^2) + 1e-4)`` dB; a noise
is scaled by ``sqrt(10^((P_clean - P_noise - SNR) / 10))`` and added to the
clean signal, which is left unscaled. A noise of ``noise``, ``music`` or
``babble`` covers all, 0.4-0.6 or 0.2-0.4 of the crop (the category drawn
once per call, the length of each noise drawn in its range), cropped or
wrap-padded to that length and placed at a random start.

Every random draw goes through the ``generator`` argument (a
``torch.Generator``; None: torch's global generator, which PyTorch seeds
per data-loader worker from the main seed), so the same generator state
gives the same output, bit for bit. There is no numpy or ``random`` state.

Why SpeechBrain's classes are not used (``speechbrain.augment.
time_domain``, SpeechBrain 1.1):

* ``AddNoise`` defines the SNR on RMS amplitudes and scales the *clean*
  signal down by ``1 - 1/(10^(SNR/20) + 1)`` (the mixture keeps the clean
  level), without the ``1e-4`` floor; its noise always spans the whole
  signal (zero-padded, or shorter noises repeated from the front), with no
  partial length or random placement; it mixes one noise per item, so
  babble (4-7 speakers each at its own SNR against the clean signal) and
  television (music against the babbled signal) cannot be built from it;
  and it draws its noises from its own DataLoader over the CSV, not from a
  generator we pass.
* ``AddReverb`` (``reverberate``) does not normalise the RIR to unit
  energy, shifts the output by the RIR's direct-path peak (delay
  compensation) and rescales the output to the clean signal's average
  amplitude; a multi-channel RIR is convolved channel by channel instead
  of one random channel being used. The authors do none of these: unit
  energy, full convolution, first N samples.
* ``SpeedPerturb`` resamples by the same ratios (its speed 90 is 90 -> 100,
  our 0.9 is 9 -> 10) but draws the speed from torch's global generator
  with no generator argument and returns no class offset. Its resampler,
  ``speechbrain.augment.time_domain.Resample`` (``torchaudio.transforms.
  Resample``), is what :class:`SpeedPerturbation` uses; it matches
  ``torchaudio.functional.resample``, the authors' call, to float
  rounding (about 1e-6).

The level and SNR helpers live in :mod:`unipool_lobes.dataio.mixing`, the
noise and RIR pools in :mod:`unipool_lobes.dataio.noise_pools`, and
:class:`SpeedPerturbation` in :mod:`unipool_lobes.dataio.speed`; their
names are importable from here as well.

Authors
 * unipool-sv developers 2026
"""

import math

import torch

from unipool_lobes.dataio.cropping import random_crop_start, wrap_pad
from unipool_lobes.dataio.mixing import (
    POWER_FLOOR,
    _as_1d,
    _integer,
    _mono,
    _uniform,
    convolve_head,
    signal_power,
    snr_gain,
)
from unipool_lobes.dataio.noise_pools import (
    MUSAN_TYPES,
    load_noise_pools,
    load_rir_pool,
)
from unipool_lobes.dataio.speed import SpeedPerturbation

__all__ = [
    "AUGMENT_TYPES",
    "MUSAN_TYPES",
    "NOISE_CATEGORIES",
    "NOISE_LENGTHS",
    "POWER_FLOOR",
    "TYPE_POOLS",
    "SpeedPerturbation",
    "WaveformAugmenter",
    "convolve_head",
    "load_noise_pools",
    "load_rir_pool",
    "signal_power",
    "snr_gain",
]

AUGMENT_TYPES = ("reverb", "noise", "music", "babble", "television")
# Share of the crop a noise covers: (low, high), per category.
NOISE_LENGTHS = {"full": (1.0, 1.0), "half": (0.4, 0.6), "third": (0.2, 0.4)}
NOISE_CATEGORIES = tuple(NOISE_LENGTHS)
# The pools each type draws from.
TYPE_POOLS = {
    "reverb": ("rir",),
    "noise": ("noise",),
    "music": ("music",),
    "babble": ("speech",),
    "television": ("speech", "music"),
}


class WaveformAugmenter:
    """Additive noise or reverberation of a crop, as the LAP authors do.

    With probability ``probability`` one of ``types`` is applied, each
    with equal chance; otherwise the crop is returned as it is.

    * ``reverb``: an RIR drawn uniformly from the RIR manifest, one channel
      drawn uniformly if it has several, divided by ``sqrt(sum(r^2))``,
      convolved fully with the crop (FFT, :func:`convolve_head`), the
      first N samples kept; no delay compensation and no rescaling.
    * ``noise``, ``music``: one MUSAN window of that type at an SNR drawn
      in ``noise_snr`` / ``music_snr`` dB.
    * ``babble``: 4-7 (``babble_speakers``, both included) MUSAN speech
      windows, each at its own SNR in ``babble_snr`` against the clean
      crop, summed.
    * ``television``: babble covering the whole crop, then one music
      window covering the whole crop, its level set against the babbled
      signal.

    The length of the noises of one call is drawn from a category drawn
    once ("full": 1.0 of the crop, "half": 0.4-0.6, "third": 0.2-0.4;
    television: "full"), each noise its own length in that range; a noise
    window longer than that is randomly cropped, a shorter one
    wrap-padded, and it is placed at a random start. Noise windows are
    down-mixed to mono (the authors take one random channel of a
    multi-channel noise; MUSAN is mono, so both read the same samples).
    See the module docstring for the level formula.

    Manifests are read once, at construction (files are checked to exist);
    samples are read at each call, so the object is cheap to copy into
    loader workers.

    Arguments
    ---------
    noise_manifest : str or path or None
        MUSAN windows (``ID,duration,wav,start,stop,type``); needed for
        every type but ``reverb``.
    rir_manifest : str or path or None
        RIRs (``ID,duration,wav,kind``); needed for ``reverb``.
    probability : float
        Chance that an augmentation applies (the authors: 0.6).
    types : sequence of str
        The types to choose among.
    noise_snr, music_snr, babble_snr : tuple of float
        ``(low, high)`` SNR ranges, dB, drawn uniformly.
    babble_speakers : tuple of int
        ``(low, high)`` number of babble speakers, both included.
    sample_rate : int
        Sample rate of crops, noises and RIRs (any other rate is an error).
    replacements : dict, optional
        ``$name`` replacements of the manifests' ``wav`` paths.

    Example
    -------
    >>> import numpy, soundfile
    >>> folder = getfixture("tmp_path")
    >>> soundfile.write(folder / "rir.wav", numpy.eye(1, 400)[0], 16000)
    >>> _ = (folder / "rirs.csv").write_text(
    ...     f"ID,duration,wav,kind\\nr,0.025,{folder / 'rir.wav'},real\\n"
    ... )
    >>> augment = WaveformAugmenter(
    ...     None, folder / "rirs.csv", probability=1.0, types=("reverb",)
    ... )
    >>> crop = torch.randn(16000)
    >>> out = augment(crop, torch.Generator().manual_seed(0))
    >>> out.shape, torch.allclose(out, crop, atol=1e-5)
    (torch.Size([16000]), True)
    """

    def __init__(
        self,
        noise_manifest,
        rir_manifest,
        probability=0.6,
        types=AUGMENT_TYPES,
        noise_snr=(0.0, 15.0),
        music_snr=(5.0, 15.0),
        babble_snr=(13.0, 20.0),
        babble_speakers=(4, 7),
        sample_rate=16000,
        replacements=None,
    ):
        self.types = tuple(types)
        if not self.types:
            raise ValueError("augmentation types: none given")
        unknown = [t for t in self.types if t not in AUGMENT_TYPES]
        if unknown:
            raise ValueError(
                f"augmentation types {unknown} are not among {AUGMENT_TYPES}"
            )
        if not 0.0 <= float(probability) <= 1.0:
            raise ValueError(f"probability {probability} is not in [0, 1]")
        self.probability = float(probability)
        self.snr = {
            "noise": self._range("noise_snr", noise_snr),
            "music": self._range("music_snr", music_snr),
            "speech": self._range("babble_snr", babble_snr),
        }
        low, high = (int(v) for v in babble_speakers)
        if not 1 <= low <= high:
            raise ValueError(
                f"babble_speakers {tuple(babble_speakers)}: need "
                "1 <= low <= high"
            )
        self.babble_speakers = (low, high)
        self.sample_rate = int(sample_rate)
        needs = TYPE_POOLS
        needed = {pool for t in self.types for pool in needs[t]}
        self.pools = {}
        if needed - {"rir"}:
            if noise_manifest is None:
                raise ValueError(
                    f"types {self.types} need a noise manifest (MUSAN)"
                )
            self.pools.update(load_noise_pools(noise_manifest, replacements))
        if "rir" in needed:
            if rir_manifest is None:
                raise ValueError("type 'reverb' needs a RIR manifest")
            self.pools["rir"] = load_rir_pool(rir_manifest, replacements)
        for pool in sorted(needed):
            if not self.pools[pool]:
                manifest = rir_manifest if pool == "rir" else noise_manifest
                users = [t for t in self.types if pool in needs[t]]
                raise ValueError(
                    f"{manifest}: no {pool} item, needed by the "
                    f"augmentation type(s) {users}"
                )

    @staticmethod
    def _range(name, value):
        low, high = (float(v) for v in value)
        if not low <= high:
            raise ValueError(f"{name} {tuple(value)}: low > high")
        return low, high

    # ----------------------------------------------------------- the draws
    def draw_type(self, generator=None):
        """Draws whether an augmentation applies, and which.

        Arguments
        ---------
        generator : torch.Generator, optional
            Source of randomness (torch's global one by default).

        Returns
        -------
        str or None
            One of ``types``, or None (the crop stays clean).
        """
        applies = torch.rand((), generator=generator).item()
        if applies >= self.probability:
            return None
        return self.types[_integer(0, len(self.types) - 1, generator)]

    def apply(self, signal, generator=None):
        """Augments a crop and tells what was drawn.

        Arguments
        ---------
        signal : torch.Tensor
            ``[time]`` clean crop at ``sample_rate``.
        generator : torch.Generator, optional
            Source of randomness (torch's global one by default).

        Returns
        -------
        signal : torch.Tensor
            ``[time]``, the input's length and dtype.
        record : dict
            ``type`` (None when clean) and what :meth:`apply_type` records.
        """
        kind = self.draw_type(generator)
        if kind is None:
            return _as_1d(signal), {"type": None}
        return self.apply_type(signal, kind, generator)

    def apply_type(self, signal, kind, generator=None):
        """Applies one augmentation type (no probability draw).

        Arguments
        ---------
        signal : torch.Tensor
            ``[time]`` clean crop at ``sample_rate``.
        kind : str
            One of ``reverb``, ``noise``, ``music``, ``babble``,
            ``television`` (its pools must have been loaded).
        generator : torch.Generator, optional
            Source of randomness (torch's global one by default).

        Returns
        -------
        signal : torch.Tensor
            ``[time]``, the input's length and dtype.
        record : dict
            ``type``; for reverb ``rir`` (ID) and ``channel``; for the
            others ``category`` and ``noises``, one dict per added noise
            (``pool``, ``id``, ``crop_start`` (None when wrap-padded),
            ``length``, ``start``, ``snr``, ``reference_power``, ``gain``),
            in the order they were added.
        """
        signal = _as_1d(signal)
        if kind not in TYPE_POOLS:
            raise ValueError(
                f"augmentation type {kind!r} is not among {AUGMENT_TYPES}"
            )
        missing = [p for p in TYPE_POOLS[kind] if p not in self.pools]
        if missing:
            raise ValueError(
                f"augmentation type {kind!r} needs the {missing} pool(s), "
                f"not loaded for types {self.types}"
            )
        record = {"type": kind}
        if kind == "reverb":
            out = self.reverberate(signal, generator, record)
        elif kind in ("noise", "music"):
            out = self.add_noises(signal, kind, 1, generator, record=record)
        elif kind == "babble":
            count = _integer(*self.babble_speakers, generator)
            out = self.add_noises(
                signal, "speech", count, generator, None, record
            )
        elif kind == "television":
            count = _integer(*self.babble_speakers, generator)
            out = self.add_noises(
                signal, "speech", count, generator, "full", record
            )
            out = self.add_noises(out, "music", 1, generator, "full", record)
        return out, record

    def __call__(self, signal, generator=None):
        """Augments a crop (see :meth:`apply`).

        Arguments
        ---------
        signal : torch.Tensor
            ``[time]`` clean crop at ``sample_rate``.
        generator : torch.Generator, optional
            Source of randomness (torch's global one by default).

        Returns
        -------
        torch.Tensor
            ``[time]``, the input's length and dtype.
        """
        return self.apply(signal, generator)[0]

    # ------------------------------------------------------------- reverb
    def reverberate(self, signal, generator=None, record=None):
        """Convolves a crop with a random unit-energy RIR, same length out.

        Arguments
        ---------
        signal : torch.Tensor
            ``[time]`` clean crop.
        generator : torch.Generator, optional
            Source of randomness (torch's global one by default).
        record : dict, optional
            Receives ``rir`` (the ID) and ``channel``.

        Returns
        -------
        torch.Tensor
            The first ``time`` samples of the full convolution.
        """
        pool = self.pools["rir"]
        index = _integer(0, len(pool) - 1, generator)
        rir = pool.read(index, self.sample_rate)
        channel = _integer(0, rir.shape[0] - 1, generator)
        rir = rir[channel].to(signal.dtype)
        energy = rir.double().pow(2).sum().item()
        if not energy > 0 or not math.isfinite(energy):
            raise ValueError(f"{pool.where(index)}: RIR has no energy")
        rir = rir / math.sqrt(energy)
        if record is not None:
            record["rir"] = pool.items[index][3]
            record["channel"] = channel
        return convolve_head(signal, rir)

    # -------------------------------------------------------------- noise
    def draw_category(self, generator=None):
        """Draws a noise-length category.

        Arguments
        ---------
        generator : torch.Generator, optional
            Source of randomness (torch's global one by default).

        Returns
        -------
        str
            ``full``, ``half`` or ``third``, with equal chance.
        """
        index = _integer(0, len(NOISE_CATEGORIES) - 1, generator)
        return NOISE_CATEGORIES[index]

    def add_noises(
        self,
        signal,
        pool_name,
        count,
        generator=None,
        category=None,
        record=None,
    ):
        """Adds ``count`` noise windows, each at its own SNR against ``signal``.

        Arguments
        ---------
        signal : torch.Tensor
            ``[time]`` reference signal (its level sets every noise's).
        pool_name : str
            ``noise``, ``music`` or ``speech``.
        count : int
            How many windows to add.
        generator : torch.Generator, optional
            Source of randomness (torch's global one by default).
        category : str, optional
            Noise-length category; drawn when not given.
        record : dict, optional
            Receives ``category`` and appends to ``noises``.

        Returns
        -------
        torch.Tensor
            ``signal`` plus the scaled, placed noises.
        """
        pool = self.pools[pool_name]
        n_samples = signal.shape[0]
        if category is None:
            category = self.draw_category(generator)
        low_share, high_share = NOISE_LENGTHS[category]
        low_snr, high_snr = self.snr[pool_name]
        reference_power = signal_power(signal)
        out = signal.clone()
        drawn = []
        for _ in range(count):
            index = _integer(0, len(pool) - 1, generator)
            share = _uniform(low_share, high_share, generator)
            length = min(n_samples, max(1, int(share * n_samples)))
            size = pool.size(index)
            crop_start = None
            if size > length:  # read only the random crop of the window
                crop_start = random_crop_start(size, length, generator)
                noise = pool.read(index, self.sample_rate, crop_start, length)
            else:
                noise = pool.read(index, self.sample_rate)
            # wrap_pad also covers a file shorter than its manifest says.
            noise = wrap_pad(_mono(noise).to(signal.dtype), length)
            snr = _uniform(low_snr, high_snr, generator)
            gain = snr_gain(reference_power, signal_power(noise), snr)
            start = random_crop_start(n_samples, length, generator)
            out[start : start + length] += gain * noise
            drawn.append(
                {
                    "pool": pool_name,
                    "id": pool.items[index][3],
                    "crop_start": crop_start,
                    "length": length,
                    "start": start,
                    "snr": snr,
                    "reference_power": reference_power,
                    "gain": gain,
                }
            )
        if record is not None:
            record.setdefault("category", category)
            record.setdefault("noises", []).extend(drawn)
        return out

    def pool_sizes(self):
        """Number of items in each loaded pool.

        Returns
        -------
        dict
            ``{pool name: count}`` (``rir``, ``noise``, ``music``,
            ``speech``, those loaded).
        """
        return {name: len(pool) for name, pool in self.pools.items()}
