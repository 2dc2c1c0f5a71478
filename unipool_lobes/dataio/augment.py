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

Authors
 * unipool-sv developers 2026
"""

import math
import os

import torch
from scipy.fft import next_fast_len
from speechbrain.augment.time_domain import Resample

# The function itself: ``speechbrain.dataio.audio_io`` is a lazy module whose
# every attribute access inspects the caller's frame (about 0.1 ms).
from speechbrain.dataio.audio_io import load as load_audio

from unipool_lobes.dataio.cropping import random_crop_start, wrap_pad
from unipool_lobes.dataio.manifest import read_manifest

AUGMENT_TYPES = ("reverb", "noise", "music", "babble", "television")
# Share of the crop a noise covers: (low, high), per category.
NOISE_LENGTHS = {"full": (1.0, 1.0), "half": (0.4, 0.6), "third": (0.2, 0.4)}
NOISE_CATEGORIES = tuple(NOISE_LENGTHS)
MUSAN_TYPES = ("noise", "music", "speech")
# The pools each type draws from.
TYPE_POOLS = {
    "reverb": ("rir",),
    "noise": ("noise",),
    "music": ("music",),
    "babble": ("speech",),
    "television": ("speech", "music"),
}
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


def _read_audio(path, start=0, n_frames=-1):
    """Reads ``[channels, time]`` float samples and the sample rate."""
    try:
        return load_audio(
            str(path), frame_offset=int(start), num_frames=int(n_frames)
        )
    except Exception as error:  # soundfile raises several types
        raise ValueError(f"{path}: unreadable audio ({error})") from error


class _Pool:
    """Audio items of one manifest: a path index, starts and stops.

    Compact on purpose (tens of thousands of rows, one copy per loader
    worker): unique paths once, and per item the path's index, the first
    and last sample, and the ID and manifest line for messages.
    """

    def __init__(self, manifest):
        self.manifest = str(manifest)
        self.paths = []
        self.items = []  # (path index, start, stop, ID, line)

    def add(self, path, start, stop, item_id, line):
        if not self.paths or self.paths[-1] != path:
            self.paths.append(path)
        self.items.append((len(self.paths) - 1, start, stop, item_id, line))

    def __len__(self):
        return len(self.items)

    def where(self, index):
        """``<manifest>:<line> (ID x)`` of an item."""
        _, _, _, item_id, line = self.items[index]
        return f"{self.manifest}:{line} (ID {item_id!r})"

    def check_files(self):
        """Raises on the first item whose file is missing."""
        seen = set()
        for index, (path_index, *_rest) in enumerate(self.items):
            if path_index in seen:
                continue
            seen.add(path_index)
            if not os.path.isfile(self.paths[path_index]):
                raise ValueError(
                    f"{self.where(index)}: audio file "
                    f"{self.paths[path_index]} not found"
                )

    def size(self, index):
        """Samples of item ``index`` (None: the whole file)."""
        _, start, stop, _, _ = self.items[index]
        return None if stop is None else stop - start

    def read(self, index, sample_rate, offset=0, n_frames=None):
        """``[channels, time]`` samples of item ``index``, rate checked:
        ``n_frames`` of them (default: all) from ``offset`` into it."""
        path_index, start, stop, _, _ = self.items[index]
        path = self.paths[path_index]
        if n_frames is None:
            n_frames = -1 if stop is None else stop - start - offset
        try:
            audio, rate = _read_audio(path, start + offset, n_frames)
        except ValueError as error:
            raise ValueError(f"{self.where(index)}: {error}") from None
        if rate != sample_rate:
            raise ValueError(
                f"{self.where(index)}: {path} has a sample rate of {rate} "
                f"Hz, the augmenter expects {sample_rate} Hz"
            )
        if audio.shape[-1] == 0:
            raise ValueError(f"{self.where(index)}: {path} gave no samples")
        return audio


def _rows(manifest, columns, replacements):
    """Manifest rows with their line numbers, columns checked."""
    rows = read_manifest(manifest, replacements)
    if rows:
        missing = [c for c in columns if c not in next(iter(rows.values()))]
        if missing:
            raise ValueError(
                f"{manifest}: missing column(s) {missing}; expected "
                f"{['ID', *columns]}"
            )
    # read_manifest keeps file order; line 1 is the header.
    for line, (item_id, row) in enumerate(rows.items(), start=2):
        yield line, item_id, row


def _sample_bounds(row, where):
    """``(start, stop)`` integers of a noise row, checked."""
    try:
        start, stop = int(row["start"]), int(row["stop"])
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: start/stop {row['start']!r}/{row['stop']!r} are not "
            "sample counts"
        ) from None
    if start < 0 or stop <= start:
        raise ValueError(f"{where}: bad window start={start} stop={stop}")
    return start, stop


def load_noise_pools(manifest, replacements=None):
    """Reads a MUSAN window manifest into one pool per type.

    Arguments
    ---------
    manifest : str or path
        ``musan.csv`` (``ID,duration,wav,start,stop,type``).
    replacements : dict, optional
        ``$name`` replacements of the ``wav`` paths (e.g. ``data_root``).

    Returns
    -------
    dict
        ``{"noise": pool, "music": pool, "speech": pool}`` (pools may be
        empty).

    Raises
    ------
    ValueError
        On a missing column, a bad window, an unknown type or a missing
        file, naming the manifest and line.

    Example
    -------
    >>> path = getfixture("tmp_path") / "musan.csv"
    >>> _ = path.write_text("ID,duration,wav,start,stop,type\\n")
    >>> sorted(len(p) for p in load_noise_pools(path).values())
    [0, 0, 0]
    """
    pools = {kind: _Pool(manifest) for kind in MUSAN_TYPES}
    columns = ("wav", "start", "stop", "type")
    for line, item_id, row in _rows(manifest, columns, replacements):
        where = f"{manifest}:{line} (ID {item_id!r})"
        if row["type"] not in pools:
            raise ValueError(
                f"{where}: type {row['type']!r} is not one of {MUSAN_TYPES}"
            )
        start, stop = _sample_bounds(row, where)
        pools[row["type"]].add(row["wav"], start, stop, item_id, line)
    for pool in pools.values():
        pool.check_files()
    return pools


def load_rir_pool(manifest, replacements=None):
    """Reads a RIR manifest into one pool (whole files).

    Arguments
    ---------
    manifest : str or path
        ``rirs.csv`` (``ID,duration,wav,kind``; only ``wav`` is needed).
    replacements : dict, optional
        ``$name`` replacements of the ``wav`` paths.

    Returns
    -------
    _Pool
        The RIRs, in file order.

    Raises
    ------
    ValueError
        On a missing ``wav`` column or a missing file, naming the manifest
        and line.

    Example
    -------
    >>> path = getfixture("tmp_path") / "rirs.csv"
    >>> _ = path.write_text("ID,duration,wav,kind\\n")
    >>> len(load_rir_pool(path))
    0
    """
    pool = _Pool(manifest)
    for line, item_id, row in _rows(manifest, ("wav",), replacements):
        pool.add(row["wav"], 0, None, item_id, line)
    pool.check_files()
    return pool


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
