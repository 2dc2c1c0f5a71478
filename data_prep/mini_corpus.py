"""Synthetic mini corpora whose speakers really differ.

Speech-like audio is made by source-filter synthesis: a glottal pulse train
(per-speaker mean f0, intonation, jitter and shimmer, breathiness, spectral
tilt) shaped by formant resonators scaled by the speaker's vocal-tract
length, in random sequences of vowel-, nasal-, fricative- and plosive-like
segments with pauses, at the speaker's speaking rate. Everything is drawn
from seeded generators: a speaker's voice depends only on the seed and its
ID, an utterance only on the seed, the speaker and its number.

The synthesis (:func:`make_speaker_profile`, :func:`synthesize_utterance`)
knows nothing of file layouts, so other corpora's layouts can reuse it;
:func:`write_mini_vctk` writes VCTK's layout (0.80 or 0.92).

Command line::

    python -m data_prep.mini_corpus vctk --out DIR [--layout 0.80]

Authors
 * unipool-sv developers 2026
"""

import argparse
import dataclasses
import pathlib
import re
import zlib

import numpy as np
import soundfile
from scipy import signal as sps

# A small set of meta values, so that meta-matched trials have matches.
ACCENT_REGIONS = {
    "English": ("Southern England", "Surrey", "Yorkshire"),
    "Scottish": ("Edinburgh", "Fife"),
    "American": ("New York", "California"),
    "Irish": ("Dublin",),
}
# Accents shift the vowel space a little: (F1, F2) multipliers.
ACCENT_VOWEL_SHIFT = {
    "English": (1.0, 1.0),
    "Scottish": (1.06, 0.94),
    "American": (0.95, 1.05),
    "Irish": (1.04, 1.02),
}
# Vowel formants F1-F4 (Hz) of an adult male voice (Peterson & Barney).
VOWEL_FORMANTS = np.array(
    [
        [270, 2290, 3010, 3500],
        [390, 1990, 2550, 3500],
        [530, 1840, 2480, 3500],
        [660, 1720, 2410, 3500],
        [730, 1090, 2440, 3500],
        [570, 840, 2410, 3500],
        [440, 1020, 2240, 3500],
        [300, 870, 2240, 3500],
        [640, 1190, 2390, 3500],
        [490, 1350, 1690, 3500],
    ],
    dtype=float,
)
NASAL_FORMANTS = np.array([[250, 1100, 2300, 3500], [300, 1500, 2500, 3500]])
FORMANT_BANDWIDTHS = np.array([70.0, 100.0, 140.0, 200.0])
SYLLABLES = "aeiouy"
CONSONANTS = "bdgkmnpstvz"


@dataclasses.dataclass
class SpeakerProfile:
    """The voice and the meta information of one synthetic speaker.

    Arguments
    ---------
    speaker_id : str
        The speaker's ID (e.g. ``p225``).
    gender : str
        ``"F"`` or ``"M"``.
    age : int
        Age in years.
    accent : str
        One of :data:`ACCENT_REGIONS`.
    region : str
        A region of that accent.
    f0 : float
        Mean fundamental frequency (Hz).
    intonation : float
        Depth of the pitch movements (semitones).
    jitter : float
        Relative random variation of the pitch period.
    shimmer : float
        Relative random variation of the pulse amplitudes.
    formant_scale : float
        Formant frequency multiplier (shorter vocal tract: larger).
    tilt : float
        Pole of the speaker's extra spectral tilt filter, in [0, 1).
    breathiness : float
        Aspiration noise level relative to the pulses.
    rate : float
        Speaking rate multiplier (larger: shorter segments).
    formant_offsets : tuple of float
        The speaker's own multipliers of F1-F4 (individual vocal tract
        shape beyond its length).
    timbre : tuple of float
        Frequency and bandwidth (Hz) of a fixed extra resonance of the
        speaker's voiced sounds (the upper-formant cluster that gives a
        voice its colour).
    """

    speaker_id: str
    gender: str
    age: int
    accent: str
    region: str
    f0: float
    intonation: float
    jitter: float
    shimmer: float
    formant_scale: float
    tilt: float
    breathiness: float
    rate: float
    formant_offsets: tuple = (1.0, 1.0, 1.0, 1.0)
    timbre: tuple = (4500.0, 600.0)

    def meta(self):
        """Returns the speaker's meta information.

        Returns
        -------
        dict
            ``gender``, ``age``, ``accent`` and ``region``.
        """
        return {
            "gender": self.gender,
            "age": self.age,
            "accent": self.accent,
            "region": self.region,
        }


def _speaker_number(speaker_id):
    """A stable number for a speaker ID (its digits, or a CRC)."""
    digits = re.sub(r"\D", "", str(speaker_id))
    if digits and len(digits) < 15:
        return int(digits)
    return zlib.crc32(str(speaker_id).encode())


def make_speaker_profile(speaker_id, seed=0, gender=None):
    """Draws a speaker's voice and meta from ``seed`` and its ID.

    Arguments
    ---------
    speaker_id : str
        The speaker's ID; the same ID and seed give the same speaker.
    seed : int
        Corpus seed.
    gender : str, optional
        ``"F"`` or ``"M"``; drawn at random when not given.

    Returns
    -------
    SpeakerProfile
        The speaker.

    Example
    -------
    >>> profile = make_speaker_profile("p225", seed=0, gender="F")
    >>> profile.gender, 160 < profile.f0 < 260
    ('F', True)
    >>> profile == make_speaker_profile("p225", seed=0, gender="F")
    True
    """
    rng = np.random.default_rng([seed, _speaker_number(speaker_id), 7])
    drawn_gender = "F" if rng.random() < 0.5 else "M"
    gender = gender or drawn_gender
    female = gender == "F"
    accent = str(rng.choice(sorted(ACCENT_REGIONS)))
    return SpeakerProfile(
        speaker_id=str(speaker_id),
        gender=gender,
        age=int(rng.integers(18, 33)),
        accent=accent,
        region=str(rng.choice(ACCENT_REGIONS[accent])),
        f0=float(rng.uniform(165, 250) if female else rng.uniform(85, 150)),
        intonation=float(rng.uniform(1.0, 4.0)),
        jitter=float(rng.uniform(0.004, 0.02)),
        shimmer=float(rng.uniform(0.02, 0.08)),
        formant_scale=float(
            rng.uniform(1.08, 1.24) if female else rng.uniform(0.9, 1.06)
        ),
        tilt=float(rng.uniform(0.2, 0.85)),
        breathiness=float(rng.uniform(0.02, 0.25)),
        rate=float(rng.uniform(0.8, 1.25)),
        formant_offsets=tuple(float(v) for v in rng.uniform(0.87, 1.13, 4)),
        timbre=(float(rng.uniform(2000, 5000)), float(rng.uniform(250, 700))),
    )


def _resonator_sos(frequencies, bandwidths, sample_rate):
    """Cascade of unit-DC-gain two-pole resonators as an SOS array."""
    keep = frequencies < 0.45 * sample_rate
    radius = np.exp(-np.pi * bandwidths[keep] / sample_rate)
    theta = 2 * np.pi * frequencies[keep] / sample_rate
    a1, a2 = -2 * radius * np.cos(theta), radius**2
    sos = np.zeros((int(keep.sum()), 6))
    sos[:, 0] = 1 + a1 + a2
    sos[:, 3], sos[:, 4], sos[:, 5] = 1.0, a1, a2
    return sos


def _smooth_noise(rng, n_points, smoothness):
    """Unit-variance noise changing about every ``smoothness`` points."""
    n_knots = max(2, int(n_points / smoothness) + 2)
    knots = rng.standard_normal(n_knots)
    return np.interp(
        np.linspace(0, n_knots - 1, n_points), np.arange(n_knots), knots
    )


def _glottal_source(profile, rng, n_samples, sample_rate):
    """Pulse train with intonation, jitter, shimmer and spectral tilt.

    The pitch contour lives at a 1 kHz control rate; pulse instants come
    from inverting its running phase, so only the final filtering runs at
    the audio rate.
    """
    control_rate = 1000.0
    n_control = int(n_samples * control_rate / sample_rate) + 2
    time = np.arange(n_control) / control_rate
    semitones = profile.intonation * (
        0.5
        - time / time[-1]  # declination over the utterance
        + 0.5 * _smooth_noise(rng, n_control, control_rate / 3)
    )
    f0 = profile.f0 * 2 ** (semitones / 12)
    phase = np.concatenate([[0.0], np.cumsum(f0[:-1]) / control_rate])
    cycles = np.arange(1, int(phase[-1]))
    cycles = cycles + profile.jitter * rng.standard_normal(len(cycles))
    position = np.round(np.interp(cycles, phase, time) * sample_rate)
    position = position.astype(np.int64)
    amplitude = 1 + profile.shimmer * rng.standard_normal(len(position))
    keep = position < n_samples
    source = np.zeros(n_samples, dtype=np.float32)
    np.add.at(source, position[keep], amplitude[keep])
    # One filter: glottal flow (-12 dB/oct), lip radiation (+6 dB/oct)
    # and the speaker's own tilt.
    pole = np.exp(-2 * np.pi * 120.0 / sample_rate)
    numerator = (1 - profile.tilt) * np.array([1.0, -1.0])
    denominator = np.convolve([1.0, -2 * pole, pole**2], [1.0, -profile.tilt])
    source = sps.lfilter(numerator, denominator, source).astype(np.float32)
    return source / (np.std(source) + 1e-9)


def _segment_plan(profile, rng, n_samples, sample_rate):
    """Random (kind, start, stop, unit) segments filling the utterance."""
    plan, position = [], int(rng.uniform(0.05, 0.2) * sample_rate)
    end = n_samples - int(rng.uniform(0.05, 0.2) * sample_rate)
    while position < end:
        kind = rng.choice(
            ["vowel", "nasal", "fricative", "plosive", "pause"],
            p=[0.45, 0.15, 0.17, 0.15, 0.08],
        )
        seconds = {
            "vowel": (0.07, 0.22),
            "nasal": (0.04, 0.09),
            "fricative": (0.05, 0.14),
            "plosive": (0.03, 0.06),
            "pause": (0.08, 0.3),
        }[kind]
        length = int(rng.uniform(*seconds) / profile.rate * sample_rate)
        stop = min(position + length, end)
        plan.append((str(kind), position, stop, int(rng.integers(0, 1000))))
        position = stop
    return plan


def synthesize_utterance(profile, rng, duration=2.5, sample_rate=16000):
    """Synthesises one utterance of a speaker.

    Arguments
    ---------
    profile : SpeakerProfile
        The voice.
    rng : numpy.random.Generator
        Draws the content (segment sequence, vowels, pitch movements).
    duration : float
        Length in seconds.
    sample_rate : int
        Output sample rate (Hz).

    Returns
    -------
    numpy.ndarray
        ``float32`` samples in [-1, 1], shape ``[round(duration * rate)]``.

    Example
    -------
    >>> profile = make_speaker_profile("p226", seed=1)
    >>> audio = synthesize_utterance(profile, np.random.default_rng(0), 1.0)
    >>> audio.shape, audio.dtype, float(abs(audio).max()) <= 1.0
    ((16000,), dtype('float32'), True)
    """
    n_samples = int(round(duration * sample_rate))
    voiced = _glottal_source(profile, rng, n_samples, sample_rate)
    noise = rng.standard_normal(n_samples, dtype=np.float32)
    shift = np.array([*ACCENT_VOWEL_SHIFT[profile.accent], 1.0, 1.0])
    output = 0.001 * noise[::-1]  # recording noise floor
    fade = max(1, int(0.008 * sample_rate))
    for kind, start, stop, unit in _segment_plan(
        profile, rng, n_samples, sample_rate
    ):
        if kind == "pause":
            continue
        if kind == "plosive":  # closure silence, then a short burst
            start = max(start, stop - 2 * fade)
        if kind in ("vowel", "nasal"):
            table = VOWEL_FORMANTS if kind == "vowel" else NASAL_FORMANTS
            formants = table[unit % len(table)] * profile.formant_scale
            formants = formants * np.array(profile.formant_offsets)
            formants = formants * (shift if kind == "vowel" else 1.0)
            formants = np.append(formants, profile.timbre[0])
            bandwidths = np.append(FORMANT_BANDWIDTHS, profile.timbre[1])
            sos = _resonator_sos(formants, bandwidths, sample_rate)
            breath = profile.breathiness * noise[start:stop]
            piece = sps.sosfilt(sos, voiced[start:stop] + breath)
            piece *= 1.0 if kind == "vowel" else 0.4
        else:
            centre = (2500 + 4000 * (unit % 5) / 4) * profile.formant_scale
            sos = _resonator_sos(
                np.array([centre]), np.array([centre / 3]), sample_rate
            )
            piece = 0.3 * sps.sosfilt(sos, noise[start:stop])
        edge = np.arange(len(piece), dtype=np.float32)
        ramp = np.minimum(1.0, np.minimum(edge, edge[::-1]) / fade)
        output[start:stop] += piece * ramp
    peak = np.abs(output).max() + 1e-9
    return (output * np.float32(rng.uniform(0.3, 0.7) / peak)).astype(
        np.float32
    )


def _pseudo_text(rng):
    """A short made-up sentence (for the txt/ transcripts)."""
    words = []
    for _ in range(int(rng.integers(3, 8))):
        letters = [
            str(rng.choice(list(CONSONANTS if k % 2 == 0 else SYLLABLES)))
            for k in range(int(rng.integers(2, 7)))
        ]
        words.append("".join(letters))
    return " ".join(words).capitalize() + ".\n"


def _speaker_info_text(profiles, layout):
    """speaker-info.txt in the column style of VCTK ``layout``."""
    if layout == "0.92":
        lines = ["ID  AGE  GENDER  ACCENTS  REGION COMMENTS \n"]
    else:
        lines = ["ID  AGE  GENDER  ACCENTS  REGION  \n"]
    for profile in profiles:
        speaker = profile.speaker_id
        if layout == "0.80":
            speaker = speaker.lstrip("p")
        region = "  ".join(profile.region.split())
        lines.append(
            f"{speaker}  {profile.age}  {profile.gender}    "
            f"{profile.accent}    {region}\n"
        )
    return "".join(lines)


def _write_vctk_audio(folder, stem, audio, sample_rate, layout, mics):
    """One utterance as VCTK stores it: a wav (0.80) or a flac per mic."""
    folder.mkdir(parents=True, exist_ok=True)
    if layout == "0.80":
        soundfile.write(folder / f"{stem}.wav", audio, sample_rate, "PCM_16")
        return
    for mic in mics:
        take = audio
        if mic == "mic2":  # another microphone colours the sound
            take = sps.lfilter([1.0, -0.6], [1.0], audio) * 0.6
        path = folder / f"{stem}_{mic}.flac"
        soundfile.write(path, take, sample_rate, "PCM_16")


def write_mini_vctk(
    folder,
    n_speakers=24,
    utterances_per_speaker=12,
    seed=0,
    layout="0.92",
    duration_range=(1.5, 4.0),
    speakers=None,
    utterance_numbers=None,
    n_shared=2,
    mics=("mic1",),
):
    """Writes a synthetic corpus in VCTK's layout (48 kHz).

    Layout ``"0.92"``: ``wav48_silence_trimmed/pXXX/pXXX_NNN_mic1.flac``;
    layout ``"0.80"``: ``wav48/pXXX/pXXX_NNN.wav``; both with
    ``txt/pXXX/pXXX_NNN.txt`` and a ``speaker-info.txt`` in that version's
    column style. Speakers are ``p225``, ``p226``... unless named.

    Utterance numbering: each speaker gets ``n_shared`` utterances numbered
    001.. (standing for VCTK's shared texts, which the paper drops) and
    ``utterances_per_speaker`` kept ones numbered 025, 026... so that the
    paper's rule (drop 000-024) leaves ``utterances_per_speaker``.

    Arguments
    ---------
    folder : str or path
        The corpus root (created).
    n_speakers : int
        Number of speakers when ``speakers`` is not given.
    utterances_per_speaker : int
        Kept utterances (numbered from 025) per speaker.
    seed : int
        Seed of the whole corpus.
    layout : str
        ``"0.92"`` (flac) or ``"0.80"`` (wav).
    duration_range : tuple of float
        Utterance lengths are uniform in this range (seconds).
    speakers : list of str, optional
        Speaker IDs to use instead of p225, p226...
    utterance_numbers : dict, optional
        ``{speaker_id: [numbers]}`` to write instead of the default ones.
    n_shared : int
        Utterances numbered 001.. written before the kept ones.
    mics : tuple of str
        Microphones written in the 0.92 layout (``mic1``, ``mic2``).

    Returns
    -------
    str
        The corpus folder (its speakers' meta is in ``speaker-info.txt``).

    Raises
    ------
    ValueError
        On an unknown layout or microphone.

    Example
    -------
    >>> import tempfile
    >>> corpus = write_mini_vctk(
    ...     tempfile.mkdtemp(), n_speakers=2, utterances_per_speaker=1,
    ...     duration_range=(0.5, 0.5),
    ... )
    >>> files = sorted(pathlib.Path(corpus).rglob("*.flac"))
    >>> [f.name for f in files[:3]]
    ['p225_001_mic1.flac', 'p225_002_mic1.flac', 'p225_025_mic1.flac']
    >>> soundfile.info(files[0]).samplerate, len(files)
    (48000, 6)
    """
    if layout not in ("0.80", "0.92"):
        raise ValueError(
            f"unknown VCTK layout {layout!r}: use '0.80' or '0.92'"
        )
    if layout == "0.92" and not set(mics) <= {"mic1", "mic2"}:
        raise ValueError(f"unknown microphones {mics}: use mic1 and/or mic2")
    folder = pathlib.Path(folder)
    sample_rate = 48000
    if speakers is None:
        speakers = [f"p{225 + index}" for index in range(n_speakers)]
    default_numbers = list(range(1, n_shared + 1)) + list(
        range(25, 25 + utterances_per_speaker)
    )
    audio_root = folder / (
        "wav48" if layout == "0.80" else "wav48_silence_trimmed"
    )
    profiles = []
    for speaker in speakers:
        profile = make_speaker_profile(speaker, seed)
        profiles.append(profile)
        numbers = (utterance_numbers or {}).get(speaker, default_numbers)
        for number in numbers:
            rng = np.random.default_rng(
                [seed, _speaker_number(speaker), int(number), 11]
            )
            audio = synthesize_utterance(
                profile, rng, rng.uniform(*duration_range), sample_rate
            )
            stem = f"{speaker}_{int(number):03d}"
            text_path = folder / "txt" / speaker / f"{stem}.txt"
            text_path.parent.mkdir(parents=True, exist_ok=True)
            text_path.write_text(_pseudo_text(rng))
            _write_vctk_audio(
                audio_root / speaker, stem, audio, sample_rate, layout, mics
            )
    (folder / "speaker-info.txt").write_text(
        _speaker_info_text(profiles, layout)
    )
    return str(folder)


def main(argv=None):
    """Command line: ``python -m data_prep.mini_corpus vctk --out DIR``.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    str
        The corpus folder written.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="corpus", required=True)
    vctk = commands.add_parser("vctk", help="a mini corpus in VCTK's layout")
    vctk.add_argument("--out", required=True, help="corpus folder to write")
    vctk.add_argument("--speakers", type=int, default=24)
    vctk.add_argument("--utterances", type=int, default=12)
    vctk.add_argument("--seed", type=int, default=0)
    vctk.add_argument("--layout", choices=("0.80", "0.92"), default="0.92")
    args = parser.parse_args(argv)
    corpus = write_mini_vctk(
        args.out,
        n_speakers=args.speakers,
        utterances_per_speaker=args.utterances,
        seed=args.seed,
        layout=args.layout,
    )
    n_files = sum(1 for _ in pathlib.Path(corpus).glob("wav48*/*/*.*"))
    print(
        f"wrote {n_files} audio files of {args.speakers} speakers to {corpus}"
    )
    return corpus


if __name__ == "__main__":
    main()
