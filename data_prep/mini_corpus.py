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
:func:`write_mini_vctk` writes VCTK's layout (0.80 or 0.92),
:func:`write_mini_librispeech` LibriSpeech's (16 kHz FLAC in subset,
speaker and chapter folders, SPEAKERS.TXT), :func:`write_mini_voxceleb`
VoxCeleb's (16 kHz WAV in speaker and video folders, a trial list).

Command line::

    python -m data_prep.mini_corpus vctk --out DIR [--layout 0.80]
    python -m data_prep.mini_corpus librispeech --out DIR [--speakers 8]
    python -m data_prep.mini_corpus voxceleb --out DIR [--speakers 8]

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
    """Cascade of unit-DC-gain two-pole resonators as an SOS array.

    A resonance at or above 0.45 of the sample rate (a fricative's at
    16 kHz) is moved down to that frequency rather than dropped, so the
    cascade is never empty; at 48 kHz no resonance comes near it.
    """
    frequencies = np.minimum(frequencies, 0.45 * sample_rate)
    radius = np.exp(-np.pi * bandwidths / sample_rate)
    theta = 2 * np.pi * frequencies / sample_rate
    a1, a2 = -2 * radius * np.cos(theta), radius**2
    sos = np.zeros((len(frequencies), 6))
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
    >>> corpus = write_mini_vctk(
    ...     str(getfixture("tmp_path")),
    ...     n_speakers=2,
    ...     utterances_per_speaker=1,
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


# ------------------------------------------------------------- LibriSpeech
# The comment block that opens LibriSpeech's SPEAKERS.TXT.
LIBRISPEECH_SPEAKERS_HEADER = (
    "; Some pipe(|) separated metadata about all LibriVox readers, "
    "whose work was used\n"
    "; in the corpus.\n"
    ";\n"
    "; The meaning of the fields in left-to-right order is as follows:\n"
    ";\n"
    "; reader_id: the ID of the reader in the LibriVox's database\n"
    "; gender: 'F' for female, 'M' for male\n"
    "; subset: the corpus subset to which the reader's audio is assigned\n"
    "; duration: total number of minutes of speech by the reader, "
    "included in the corpus\n"
    "; name: the name under which the reader is registered in LibriVox\n"
    ";\n"
    ";ID  |SEX| SUBSET           |MINUTES| NAME\n"
)
LIBRISPEECH_UTTERANCE_ID = re.compile(r"(\d+)-(\d+)-(\d+)")


def _librispeech_plan(
    subsets,
    n_speakers,
    chapters_per_speaker,
    utterances_per_chapter,
    speakers,
    utterance_ids,
):
    """``{subset: {speaker: {chapter: [utterance ids]}}}`` to write."""
    speakers = speakers or {}
    utterance_ids = utterance_ids or {}
    plan, next_speaker, next_chapter = {}, 100, 1000
    for subset in subsets:
        chosen = speakers.get(subset)
        if chosen is None:
            chosen = [str(next_speaker + k) for k in range(n_speakers)]
            next_speaker += n_speakers
        plan[subset] = {}
        for speaker in chosen:
            chapters = {}
            for utterance in utterance_ids.get(speaker, ()):
                match = LIBRISPEECH_UTTERANCE_ID.fullmatch(utterance)
                if match is None or match.group(1) != speaker:
                    raise ValueError(
                        f"utterance ID {utterance!r} of speaker {speaker} "
                        "is not <speaker>-<chapter>-<utterance> with digits"
                    )
                chapters.setdefault(match.group(2), []).append(utterance)
            if speaker not in utterance_ids:
                for _ in range(chapters_per_speaker):
                    chapters[str(next_chapter)] = [
                        f"{speaker}-{next_chapter}-{number:04d}"
                        for number in range(utterances_per_chapter)
                    ]
                    next_chapter += 1
            plan[subset][speaker] = chapters
    return plan


def write_mini_librispeech(
    folder,
    n_speakers=8,
    chapters_per_speaker=2,
    utterances_per_chapter=3,
    seed=0,
    subsets=("train-clean-100", "dev-clean", "test-clean"),
    duration_range=(1.5, 4.0),
    speakers=None,
    genders=None,
    utterance_ids=None,
):
    """Writes a synthetic corpus in LibriSpeech's layout (16 kHz FLAC).

    Files: ``<subset>/<speaker>/<chapter>/<speaker>-<chapter>-NNNN.flac``
    (16-bit mono FLAC at 16 kHz), a ``<speaker>-<chapter>.trans.txt``
    transcript per chapter, and ``SPEAKERS.TXT`` with LibriSpeech's header
    comments and ``ID | SEX | SUBSET | MINUTES | NAME`` lines. Speakers are
    numbered 100, 101... across the subsets (genders alternating F, M)
    and chapters 1000, 1001... unless given.

    Arguments
    ---------
    folder : str or path
        The corpus root (created).
    n_speakers : int
        Speakers per subset when ``speakers`` does not name them.
    chapters_per_speaker : int
        Chapters of each generated speaker.
    utterances_per_chapter : int
        Utterances of each generated chapter (numbered from 0000).
    seed : int
        Seed of the whole corpus.
    subsets : tuple of str
        Subset folders to write.
    duration_range : tuple of float
        Utterance lengths are uniform in this range (seconds).
    speakers : dict, optional
        ``{subset: [speaker ids]}`` to use instead of generated numbers
        (e.g. real LibriSpeech IDs).
    genders : dict, optional
        ``{speaker id: "F" or "M"}``; default alternates F and M.
    utterance_ids : dict, optional
        ``{speaker id: [utterance ids]}`` to write for a speaker instead
        of its generated chapters (e.g. IDs of a published trial list).

    Returns
    -------
    str
        The corpus folder.

    Raises
    ------
    ValueError
        On an utterance ID that is not ``<speaker>-<chapter>-<number>``.

    Example
    -------
    >>> corpus = write_mini_librispeech(
    ...     str(getfixture("tmp_path")),
    ...     n_speakers=2,
    ...     chapters_per_speaker=1,
    ...     utterances_per_chapter=2,
    ...     duration_range=(0.3, 0.3),
    ...     subsets=("dev-clean",),
    ... )
    >>> files = sorted(pathlib.Path(corpus).rglob("*.flac"))
    >>> files[1].relative_to(corpus).as_posix()
    'dev-clean/100/1000/100-1000-0001.flac'
    >>> soundfile.info(files[0]).samplerate, len(files)
    (16000, 4)
    """
    folder = pathlib.Path(folder)
    sample_rate = 16000
    # Synthesised at 48 kHz and brought down to 16 kHz, as LibriSpeech's
    # audio was: the synthesis places fricative noise up to 8 kHz.
    synthesis_rate = 3 * sample_rate
    genders = genders or {}
    plan = _librispeech_plan(
        subsets,
        n_speakers,
        chapters_per_speaker,
        utterances_per_chapter,
        speakers,
        utterance_ids,
    )
    speaker_lines = []
    for subset, subset_speakers in plan.items():
        for index, (speaker, chapters) in enumerate(subset_speakers.items()):
            gender = genders.get(speaker, "FM"[index % 2])
            profile = make_speaker_profile(speaker, seed, gender)
            n_samples = 0
            for chapter, utterances in chapters.items():
                chapter_folder = folder / subset / speaker / chapter
                chapter_folder.mkdir(parents=True, exist_ok=True)
                transcript = []
                for utterance in sorted(utterances):
                    number = int(utterance.rsplit("-", 1)[1])
                    rng = np.random.default_rng(
                        [seed, _speaker_number(speaker), int(chapter), number]
                    )
                    audio = synthesize_utterance(
                        profile,
                        rng,
                        rng.uniform(*duration_range),
                        synthesis_rate,
                    )
                    audio = np.clip(sps.resample_poly(audio, 1, 3), -1, 1)
                    n_samples += len(audio)
                    soundfile.write(
                        chapter_folder / f"{utterance}.flac",
                        audio,
                        sample_rate,
                        "PCM_16",
                    )
                    text = _pseudo_text(rng).strip().rstrip(".").upper()
                    transcript.append(f"{utterance} {text}\n")
                trans = chapter_folder / f"{speaker}-{chapter}.trans.txt"
                trans.write_text("".join(transcript))
            minutes = n_samples / sample_rate / 60
            speaker_lines.append(
                f"{speaker:<5}| {gender} | {subset:<17}| {minutes:.2f} | "
                f"Reader {speaker}\n"
            )
    speaker_lines.sort(key=lambda line: int(line.split("|")[0]))
    (folder / "SPEAKERS.TXT").write_text(
        LIBRISPEECH_SPEAKERS_HEADER + "".join(speaker_lines)
    )
    return str(folder)


def _librispeech_command(commands):
    """Adds the ``librispeech`` subcommand to the command line."""
    command = commands.add_parser(
        "librispeech", help="a mini corpus in LibriSpeech's layout"
    )
    command.add_argument("--out", required=True, help="corpus folder to write")
    command.add_argument(
        "--speakers", type=int, default=8, help="speakers per subset"
    )
    command.add_argument("--chapters", type=int, default=2)
    command.add_argument("--utterances", type=int, default=3)
    command.add_argument("--seed", type=int, default=0)
    command.add_argument(
        "--subsets",
        nargs="+",
        default=["train-clean-100", "dev-clean", "test-clean"],
    )

    def _run(args):
        corpus = write_mini_librispeech(
            args.out,
            n_speakers=args.speakers,
            chapters_per_speaker=args.chapters,
            utterances_per_chapter=args.utterances,
            seed=args.seed,
            subsets=tuple(args.subsets),
        )
        n_files = sum(1 for _ in pathlib.Path(corpus).glob("*/*/*/*.flac"))
        n_speakers = args.speakers * len(args.subsets)
        print(
            f"wrote {n_files} FLAC files of {n_speakers} speakers to {corpus}"
        )
        return corpus

    command.set_defaults(run=_run)


def _vctk_command(commands):
    """Adds the ``vctk`` subcommand to the command line."""
    vctk = commands.add_parser("vctk", help="a mini corpus in VCTK's layout")
    vctk.add_argument("--out", required=True, help="corpus folder to write")
    vctk.add_argument("--speakers", type=int, default=24)
    vctk.add_argument("--utterances", type=int, default=12)
    vctk.add_argument("--seed", type=int, default=0)
    vctk.add_argument("--layout", choices=("0.80", "0.92"), default="0.92")

    def _run(args):
        corpus = write_mini_vctk(
            args.out,
            n_speakers=args.speakers,
            utterances_per_speaker=args.utterances,
            seed=args.seed,
            layout=args.layout,
        )
        n_files = sum(1 for _ in pathlib.Path(corpus).glob("wav48*/*/*.*"))
        print(
            f"wrote {n_files} audio files of {args.speakers} speakers to "
            f"{corpus}"
        )
        return corpus

    vctk.set_defaults(run=_run)


# ---------------------------------------------------------------- VoxCeleb
VIDEO_ID_ALPHABET = (
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)


def _video_ids(speaker, count, seed):
    """``count`` distinct YouTube-like 11-character video IDs."""
    rng = np.random.default_rng([seed, _speaker_number(speaker), 13])
    videos = []
    while len(videos) < count:
        letters = rng.choice(list(VIDEO_ID_ALPHABET), 11)
        video = "".join(letters)
        if video not in videos:
            videos.append(video)
    return videos


def _record_on_channel(audio, speaker, video, seed, sample_rate):
    """Colours a clean utterance with the channel of one video.

    Each video gets its own spectral tilt, band limit, level and noise
    floor, so that two videos of a speaker sound like two sessions.
    """
    rng = np.random.default_rng(
        [seed, _speaker_number(speaker), zlib.crc32(video.encode()), 17]
    )
    tilt = rng.uniform(-0.6, 0.6)
    band_limit = sps.butter(
        2, rng.uniform(3000, 0.47 * sample_rate), fs=sample_rate, output="sos"
    )
    coloured = sps.sosfilt(band_limit, sps.lfilter([1.0, -tilt], [1.0], audio))
    coloured *= rng.uniform(0.3, 0.8) / (np.abs(coloured).max() + 1e-9)
    coloured += rng.uniform(5e-4, 5e-3) * rng.standard_normal(len(coloured))
    return np.clip(coloured, -1, 1).astype(np.float32)


def write_mini_voxceleb(
    folder,
    n_speakers=8,
    videos_per_speaker=3,
    utterances_per_video=2,
    seed=0,
    duration_range=(1.5, 4.0),
    speakers=None,
    test_speakers=None,
    audio_folder="wav",
    trial_file="veri_test2.txt",
    n_trials_per_class=200,
):
    """Writes a synthetic corpus in VoxCeleb's layout (16 kHz WAV).

    Files: ``<audio_folder>/idXXXXX/<video>/NNNNN.wav`` (16-bit mono WAV at
    16 kHz; utterances numbered from 00001 in each video; 11-character
    video IDs). Each video colours its utterances with its own channel
    (spectral tilt, band limit, level, noise floor), so that sessions of a
    speaker differ as VoxCeleb's YouTube videos do. A trial list over the
    test speakers is written in the official text form (``<0|1>
    idXXXXX/<video>/NNNNN.wav idXXXXX/<video>/NNNNN.wav``, as
    ``veri_test2.txt``), drawn with
    :func:`data_prep.trials.balanced_trials`. Speakers are ``id10001``,
    ``id10002``... unless named.

    Arguments
    ---------
    folder : str or path
        The corpus root (created).
    n_speakers : int
        Number of speakers when ``speakers`` is not given.
    videos_per_speaker : int
        Videos (sessions) of each speaker.
    utterances_per_video : int
        Utterances of each video.
    seed : int
        Seed of the whole corpus.
    duration_range : tuple of float
        Utterance lengths are uniform in this range (seconds).
    speakers : list of str, optional
        Speaker IDs to use instead of id10001, id10002...
    test_speakers : list of str, optional
        Speakers of the trial list (default: the last quarter of the
        speakers, at least two); empty for no trial list.
    audio_folder : str
        The folder under ``folder`` holding the speakers: ``"wav"``
        (SpeechBrain's layout) or e.g. ``"vox2_test_wav"`` (the UniPool
        authors' layout).
    trial_file : str
        Name of the trial list written in ``folder``.
    n_trials_per_class : int
        Positive (and negative) trials of the list, at most.

    Returns
    -------
    str
        The corpus folder.

    Raises
    ------
    ValueError
        When a test speaker is not one of the speakers.

    Example
    -------
    >>> corpus = write_mini_voxceleb(
    ...     str(getfixture("tmp_path")),
    ...     n_speakers=2,
    ...     videos_per_speaker=2,
    ...     utterances_per_video=2,
    ...     duration_range=(0.3, 0.3),
    ... )
    >>> files = sorted(pathlib.Path(corpus).glob("wav/*/*/*.wav"))
    >>> len(files), files[0].name, len(files[0].parent.name)
    (8, '00001.wav', 11)
    >>> soundfile.info(files[0]).samplerate
    16000
    >>> open(f"{corpus}/veri_test2.txt").readline().split()[1][:8]
    'id10001/'
    """
    from data_prep.trials import balanced_trials, write_voxceleb_trials

    folder = pathlib.Path(folder)
    sample_rate = 16000
    # Synthesised at 48 kHz and brought down, as for LibriSpeech: the
    # synthesis places fricative noise up to 8 kHz.
    synthesis_rate = 3 * sample_rate
    if speakers is None:
        speakers = [f"id{10001 + index}" for index in range(n_speakers)]
    speakers = list(speakers)
    if test_speakers is None:
        test_speakers = speakers[-max(2, len(speakers) // 4) :]
    unknown = sorted(set(test_speakers) - set(speakers))
    if unknown:
        raise ValueError(f"test speakers {unknown} are not among the speakers")
    utterances = {}
    for speaker in speakers:
        profile = make_speaker_profile(speaker, seed)
        for video in _video_ids(speaker, videos_per_speaker, seed):
            video_folder = folder / audio_folder / speaker / video
            video_folder.mkdir(parents=True, exist_ok=True)
            for number in range(1, utterances_per_video + 1):
                rng = np.random.default_rng(
                    [
                        seed,
                        _speaker_number(speaker),
                        zlib.crc32(video.encode()),
                        number,
                    ]
                )
                clean = synthesize_utterance(
                    profile, rng, rng.uniform(*duration_range), synthesis_rate
                )
                audio = _record_on_channel(
                    sps.resample_poly(clean, 1, 3),
                    speaker,
                    video,
                    seed,
                    sample_rate,
                )
                soundfile.write(
                    video_folder / f"{number:05d}.wav",
                    audio,
                    sample_rate,
                    "PCM_16",
                )
                utterances.setdefault(speaker, []).append(
                    f"{speaker}--{video}--{number:05d}"
                )
    if test_speakers:
        trials = balanced_trials(
            {speaker: utterances[speaker] for speaker in test_speakers},
            n_per_class=n_trials_per_class,
            seed=seed,
        )
        write_voxceleb_trials(folder / trial_file, trials)
    return str(folder)


def write_mini_voxceleb_setting(
    root, groups, n_trials_per_class=20, seed=3, **audio
):
    """Writes a mini VoxCeleb1 and VoxCeleb2 with lists in the published
    form, the inputs of :func:`data_prep.voxceleb.prepare_voxceleb`.

    VoxCeleb1 (dev and test speakers, with an official-style
    ``veri_test2.txt`` over the test speakers) goes to ``root/vox1`` in
    SpeechBrain's layout; VoxCeleb2 dev and test to ``root/vox2`` in the
    authors' (``vox2_dev_wav/``, ``vox2_test_wav/``). ``root/lists`` holds
    the authors' published lists' form: ``speakers/speaker-<group>.csv``
    and ``trials/trials-vox1.csv`` (Vox1-O).

    Arguments
    ---------
    root : str or path
        An empty folder.
    groups : dict
        Speaker IDs of ``vox1-dev``, ``vox1-test``, ``vox2-dev`` and
        ``vox2-test``.
    n_trials_per_class : int
        Target and non-target trials of the Vox1-O list.
    seed : int
        Seed of the VoxCeleb1 audio (VoxCeleb2's is ``seed + 1``).
    **audio
        Passed to :func:`write_mini_voxceleb` (``duration_range``,
        ``videos_per_speaker``, ``utterances_per_video``).

    Returns
    -------
    data_folders : str
        The two roots, comma-separated, as the recipes take them.
    lists : pathlib.Path
        The folder of the lists (``speakers/``, ``trials/``).

    Example
    -------
    >>> groups = {
    ...     "vox1-dev": ["id10001"],
    ...     "vox1-test": ["id10270", "id10271"],
    ...     "vox2-dev": ["id00012"],
    ...     "vox2-test": ["id00017"],
    ... }
    >>> roots, lists = write_mini_voxceleb_setting(
    ...     getfixture("tmp_path"),
    ...     groups,
    ...     n_trials_per_class=2,
    ...     duration_range=(0.5, 0.6),
    ...     videos_per_speaker=1,
    ...     utterances_per_video=2,
    ... )
    >>> sorted(p.name for p in (lists / "speakers").iterdir())[0]
    'speaker-vox1-dev.csv'
    """
    root = pathlib.Path(root)
    vox1 = write_mini_voxceleb(
        root / "vox1",
        speakers=groups["vox1-dev"] + groups["vox1-test"],
        test_speakers=groups["vox1-test"],
        n_trials_per_class=n_trials_per_class,
        seed=seed,
        **audio,
    )
    for subset in ("dev", "test"):
        write_mini_voxceleb(
            root / "vox2",
            speakers=groups[f"vox2-{subset}"],
            test_speakers=(),
            audio_folder=f"vox2_{subset}_wav",
            seed=seed + 1,
            **audio,
        )
    lists = root / "lists"
    (lists / "speakers").mkdir(parents=True)
    for name, speakers in groups.items():
        (lists / "speakers" / f"speaker-{name}.csv").write_text(
            "ID\n" + "\n".join(speakers) + "\n"
        )
    # The published Vox1-O list's form, from the corpus's official list.
    rows = ["LABEL,SAMPLE1,SAMPLE2"]
    official = (pathlib.Path(vox1) / "veri_test2.txt").read_text()
    for line in official.split("\n"):
        if line:
            label, enrol, test = line.split()
            rows.append(f"{label},vox1_test_wav/{enrol},vox1_test_wav/{test}")
    (lists / "trials").mkdir()
    (lists / "trials/trials-vox1.csv").write_text("\n".join(rows) + "\n")
    return f"{vox1},{root / 'vox2'}", lists


def _voxceleb_command(commands):
    """Adds the ``voxceleb`` subcommand to the command line."""
    command = commands.add_parser(
        "voxceleb", help="a mini corpus in VoxCeleb's layout"
    )
    command.add_argument("--out", required=True, help="corpus folder to write")
    command.add_argument("--speakers", type=int, default=8)
    command.add_argument(
        "--first_speaker",
        type=int,
        default=10001,
        help="number of the first speaker ID (17 gives id00017)",
    )
    command.add_argument("--videos", type=int, default=3)
    command.add_argument("--utterances", type=int, default=2)
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--audio_folder", default="wav")

    def _run(args):
        speakers = [
            f"id{args.first_speaker + index:05d}"
            for index in range(args.speakers)
        ]
        corpus = write_mini_voxceleb(
            args.out,
            speakers=speakers,
            videos_per_speaker=args.videos,
            utterances_per_video=args.utterances,
            seed=args.seed,
            audio_folder=args.audio_folder,
        )
        n_files = sum(1 for _ in pathlib.Path(corpus).glob("*/*/*/*.wav"))
        print(
            f"wrote {n_files} wav files of {args.speakers} speakers to {corpus}"
        )
        return corpus

    command.set_defaults(run=_run)


def main(argv=None):
    """Command line: ``python -m data_prep.mini_corpus CORPUS --out DIR``.

    Each corpus is a subcommand (``vctk``, ``librispeech``,
    ``voxceleb``) with its own options (``--help``).

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
    for add_command in (
        _vctk_command,
        _librispeech_command,
        _voxceleb_command,
    ):
        add_command(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    main()
