"""Mini MUSAN and mini RIRS_NOISES, in the real corpora's folder layouts.

For tests and demos of :mod:`data_prep.noise_corpora` and
:mod:`unipool_lobes.dataio.augment`: a few seconds of audio per file, 16-bit
16 kHz wav, under 2 MB in all with the defaults, written in well under a
second, the same bytes for the same seed.

* :func:`write_mini_musan`: ``musan/noise/<source>/noise-<source>-NNNN.wav``
  (coloured noise, a random spectral slope per file), ``musan/music/...``
  (sequences of harmonic tones with note envelopes) and
  ``musan/speech/...`` (the speech wavs given, concatenated until the file
  is long enough); the default lengths give 5 s windows (one file of each
  type is at most 5 s, so it gives none).
* :func:`write_mini_rirs`: ``RIRS_NOISES/real_rirs_isotropic_noises/``
  with its ``rir_list`` and a few RIRs (one of them two-channel), and
  ``RIRS_NOISES/simulated_rirs/<room size>/RoomNNN/RoomNNN-00001.wav``.
  An RIR is a direct-path peak after a short random delay, then noise
  decaying exponentially at a random reverberation time.

Authors
 * unipool-sv developers 2026
"""

import pathlib

import numpy as np
import soundfile

NOISE_SOURCES = ("free-sound", "sound-bible")
MUSIC_SOURCES = ("fma", "jamendo")
SPEECH_SOURCES = ("librivox", "us-gov")
REAL_RIRS = "real_rirs_isotropic_noises"
SIMULATED_RIRS = "simulated_rirs"


def _write(path, audio, sample_rate):
    """Writes 16-bit PCM, making the folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio, sample_rate, subtype="PCM_16")


def _peak(audio, level):
    """Scales to a peak of ``level``."""
    return (audio * (level / (np.abs(audio).max() + 1e-9))).astype(np.float32)


def coloured_noise(rng, n_samples, slope):
    """Noise whose power spectrum falls as ``1 / f^slope``.

    Arguments
    ---------
    rng : numpy.random.Generator
        Draws the white noise.
    n_samples : int
        Length.
    slope : float
        0 is white, 1 pink, 2 brown.

    Returns
    -------
    numpy.ndarray
        ``[n_samples]`` float32, unit peak.

    Example
    -------
    >>> noise = coloured_noise(np.random.default_rng(0), 1000, 1.0)
    >>> noise.shape, float(abs(noise).max())
    ((1000,), 1.0)
    """
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    frequencies = np.arange(spectrum.shape[0], dtype=float)
    frequencies[0] = 1.0
    spectrum = spectrum / frequencies ** (slope / 2.0)
    spectrum[0] = 0.0
    return _peak(np.fft.irfft(spectrum, n_samples), 1.0)


def tone_sequence(rng, n_samples, sample_rate):
    """Music-like audio: notes of a scale, each with a few harmonics.

    Arguments
    ---------
    rng : numpy.random.Generator
        Draws the notes, their lengths and their timbre.
    n_samples : int
        Length.
    sample_rate : int
        Sample rate (Hz).

    Returns
    -------
    numpy.ndarray
        ``[n_samples]`` float32, unit peak.

    Example
    -------
    >>> music = tone_sequence(np.random.default_rng(0), 8000, 16000)
    >>> music.shape
    (8000,)
    """
    out = np.zeros(n_samples)
    n_harmonics = int(rng.integers(3, 7))
    decay = rng.uniform(0.4, 0.8)
    position = 0
    while position < n_samples:
        length = int(rng.uniform(0.15, 0.5) * sample_rate)
        stop = min(n_samples, position + length)
        semitone = int(rng.choice([0, 2, 4, 5, 7, 9, 11, 12, 14]))
        f0 = 220.0 * 2 ** (semitone / 12.0)
        t = np.arange(stop - position) / sample_rate
        note = sum(
            decay**h * np.sin(2 * np.pi * f0 * (h + 1) * t)
            for h in range(n_harmonics)
        )
        attack = np.minimum(1.0, t / 0.01)
        out[position:stop] += note * attack * np.exp(-t * rng.uniform(2, 6))
        position = stop
    return _peak(out, 1.0)


def synthetic_rir(rng, n_samples, sample_rate, rt60):
    """A room impulse response: a delayed direct path, then a decaying tail.

    Arguments
    ---------
    rng : numpy.random.Generator
        Draws the delay and the tail.
    n_samples : int
        Length.
    sample_rate : int
        Sample rate (Hz).
    rt60 : float
        Reverberation time (s): the tail falls 60 dB in it.

    Returns
    -------
    numpy.ndarray
        ``[n_samples]`` float32; the direct-path peak is the largest sample.

    Example
    -------
    >>> rir = synthetic_rir(np.random.default_rng(0), 2000, 16000, 0.3)
    >>> int(np.argmax(abs(rir))) < 100
    True
    """
    delay = int(rng.integers(10, 80))
    rir = np.zeros(n_samples)
    t = np.arange(n_samples - delay - 1) / sample_rate
    tail = rng.standard_normal(t.shape[0]) * np.exp(-6.9 * t / rt60)
    rir[delay + 1 :] = 0.3 * tail / (np.abs(tail).max() + 1e-9)
    rir[delay] = 1.0
    return rir.astype(np.float32)


def write_mini_musan(
    root,
    speech_wavs,
    seed=0,
    noise_seconds=(8.5, 6.5, 4.5),
    music_seconds=(8.5, 5.0),
    speech_seconds=(8.5, 6.5),
    sample_rate=16000,
):
    """Writes a mini MUSAN under ``<root>/musan``.

    File ``i`` of a type goes to source ``i % 2`` of that type (MUSAN's
    source names, e.g. ``noise/free-sound/noise-free-sound-0000.wav``).

    Arguments
    ---------
    root : str or path
        Folder to write ``musan/`` into.
    speech_wavs : sequence of str or path
        Speech files (mono, ``sample_rate``) that babble files are made of:
        each speech file is these, from a seeded shuffle, concatenated
        (and repeated) until it is long enough.
    seed : int
        Everything is drawn from it.
    noise_seconds, music_seconds, speech_seconds : sequence of float
        Length of each file of the type, seconds.
    sample_rate : int
        Sample rate (Hz).

    Returns
    -------
    str
        The path of the ``musan/`` folder.

    Raises
    ------
    ValueError
        When no speech wav is given (and speech files are asked for) or one
        has another sample rate.

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> speech = root / "s.wav"
    >>> soundfile.write(
    ...     speech, np.random.default_rng(0).normal(0, 0.1, 16000), 16000
    ... )
    >>> musan = pathlib.Path(write_mini_musan(root, [speech]))
    >>> sorted(str(p.relative_to(musan)) for p in musan.rglob("*.wav"))[:2]
    ['music/fma/music-fma-0000.wav', 'music/jamendo/music-jamendo-0001.wav']
    """
    musan = pathlib.Path(root) / "musan"
    speech_wavs = [pathlib.Path(p) for p in speech_wavs]
    if speech_seconds and not speech_wavs:
        raise ValueError("write_mini_musan: no speech wav given for babble")
    speech = []
    for path in speech_wavs:
        audio, rate = soundfile.read(str(path), dtype="float32")
        if rate != sample_rate:
            raise ValueError(
                f"{path}: sample rate {rate} Hz, expected {sample_rate} Hz"
            )
        speech.append(audio if audio.ndim == 1 else audio.mean(axis=1))
    plans = (
        ("noise", NOISE_SOURCES, noise_seconds),
        ("music", MUSIC_SOURCES, music_seconds),
        ("speech", SPEECH_SOURCES, speech_seconds),
    )
    for type_number, (kind, sources, durations) in enumerate(plans):
        for index, seconds in enumerate(durations):
            rng = np.random.default_rng([seed, type_number, index])
            n_samples = int(round(seconds * sample_rate))
            if kind == "noise":
                audio = coloured_noise(rng, n_samples, rng.uniform(0.0, 2.0))
                audio = _peak(audio, rng.uniform(0.3, 0.8))
            elif kind == "music":
                audio = tone_sequence(rng, n_samples, sample_rate)
                audio = _peak(audio, rng.uniform(0.3, 0.8))
            else:
                order = rng.permutation(len(speech))
                pieces, total = [], 0
                while total < n_samples:
                    for number in order:
                        pieces.append(speech[number])
                        total += speech[number].shape[0]
                audio = np.concatenate(pieces)[:n_samples]
            source = sources[index % len(sources)]
            name = f"{kind}-{source}-{index:04d}.wav"
            _write(musan / kind / source / name, audio, sample_rate)
    return str(musan)


def write_mini_rirs(
    root,
    seed=0,
    n_real=3,
    rooms=(("smallroom", 2), ("mediumroom", 1)),
    rir_seconds=0.25,
    sample_rate=16000,
):
    """Writes a mini RIRS_NOISES under ``<root>/RIRS_NOISES``.

    Real RIRs are ``real_rirs_isotropic_noises/air_type1_air_mini_N.wav``
    (the last one two-channel, two different responses), listed in
    ``rir_list`` as OpenSLR 28 does (``--rir-id ID --room-id ROOM
    RIRS_NOISES/real_rirs_isotropic_noises/FILE``); their peaks differ
    (0.2-0.9), since real files are not normalised. Simulated RIRs are
    ``simulated_rirs/<size>/RoomNNN/RoomNNN-00001.wav``.

    Arguments
    ---------
    root : str or path
        Folder to write ``RIRS_NOISES/`` into.
    seed : int
        Everything is drawn from it.
    n_real : int
        Number of real RIRs.
    rooms : sequence of (str, int)
        Simulated room sizes and how many rooms of each.
    rir_seconds : float
        Length of each RIR, seconds.
    sample_rate : int
        Sample rate (Hz).

    Returns
    -------
    str
        The path of the ``RIRS_NOISES/`` folder.

    Example
    -------
    >>> folder = pathlib.Path(write_mini_rirs(getfixture("tmp_path")))
    >>> len(
    ...     (folder / "real_rirs_isotropic_noises" / "rir_list")
    ...     .read_text()
    ...     .splitlines()
    ... )
    3
    >>> len(list((folder / "simulated_rirs").glob("*/*/*.wav")))
    3
    """
    folder = pathlib.Path(root) / "RIRS_NOISES"
    n_samples = int(round(rir_seconds * sample_rate))
    lines = []
    for index in range(n_real):
        rng = np.random.default_rng([seed, 100, index])
        channels = 2 if index == n_real - 1 else 1
        rir = np.stack(
            [
                synthetic_rir(
                    rng, n_samples, sample_rate, rng.uniform(0.1, 0.5)
                )
                for _ in range(channels)
            ],
            axis=1,
        )
        rir = _peak(rir, rng.uniform(0.2, 0.9))
        name = f"air_type1_air_mini_{index}"
        relative = f"{REAL_RIRS}/{name}.wav"
        _write(folder / relative, rir, sample_rate)
        lines.append(
            f"--rir-id {name} --room-id air_mini RIRS_NOISES/{relative}\n"
        )
    (folder / REAL_RIRS / "rir_list").write_text("".join(lines))
    for size_index, (size, count) in enumerate(rooms):
        for room in range(1, count + 1):
            rng = np.random.default_rng([seed, 200 + size_index, room])
            rt60 = rng.uniform(0.15, 0.3) * (1 + size_index)
            rir = synthetic_rir(rng, n_samples, sample_rate, rt60)
            name = f"Room{room:03d}"
            path = folder / SIMULATED_RIRS / size / name / f"{name}-00001.wav"
            _write(path, _peak(rir, 0.9), sample_rate)
    return str(folder)
