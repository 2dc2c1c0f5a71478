"""VCTK preparation: 16 kHz manifests, speaker splits and trial lists.

Reads VCTK as distributed, version 0.80 (``wav48/pXXX/pXXX_NNN.wav``) or
0.92 (``wav48_silence_trimmed/pXXX/pXXX_NNN_mic1.flac``), each with its
``speaker-info.txt``, and applies the UniPool paper's rules: speakers p280
and p315 removed, utterances 000-024 (texts shared by all speakers)
dropped, audio resampled from 48 kHz to 16 kHz mono once into
``<save_folder>/wav16k/pXXX/pXXX_NNN.wav``.

Speakers are split as the authors published (72/18/18 speakers, their
``trials-valid.csv`` and ``trials-test.csv``) or, with
``split_source="generate"``, by a seeded gender-balanced split with our
balanced trial generator (:func:`data_prep.trials.balanced_trials`).

Authors
 * unipool-sv developers 2026
"""

import logging
import pathlib
import re

from data_prep.common import (
    ProblemReport,
    convert_audio_files,
    mark_prepared,
    paper_lists_folder,
    paper_lists_option,
    scaled_heldout_counts,
    short_audio_problem,
    split_speakers,
    start_preparation,
    trials_with_audio,
    write_csv_atomic,
)
from data_prep.trials import (
    age_bands,
    balanced_trials,
    read_paper_speakers,
    read_paper_trials,
    write_trials_csv,
)

logger = logging.getLogger(__name__)

# The authors' published lists (MIT), pinned to the commit they were read at.
PAPER_LISTS_URL = (
    "https://raw.githubusercontent.com/sadPororo/UniPool-SV/"
    "097c1e2aa4956f1629e7d1dfef8d68335c12a959/data/VCTK-Corpus/preprocess"
)
META_COLUMNS = ("gender", "age", "accent", "region")
MANIFEST_COLUMNS = ("ID", "duration", "wav", "start", "stop", "spk_id")
SPLITS = ("train", "valid", "test")
# Dropped by the paper's text for recording problems; the published split
# lists nevertheless keep p280.
DROPPED_SPEAKERS = ("p280", "p315")
# Paper list column -> our meta key.
PAPER_META = {
    "GENDER": "gender",
    "AGE": "age",
    "ACCENTS": "accent",
    "REGION": "region",
}


def read_speaker_info(path, problems=None):
    """Reads VCTK's ``speaker-info.txt`` (version 0.80 or 0.92).

    Columns are ``ID AGE GENDER ACCENTS REGION`` (+ ``COMMENTS`` in 0.92),
    separated by runs of spaces; the region may be several words or absent
    and a comment in parentheses (``(mic2 files unavailable)``) is dropped.
    Numeric IDs get a ``p`` (0.80 writes ``225``, 0.92 ``p225``).

    Arguments
    ---------
    path : str or path
        The ``speaker-info.txt`` file.
    problems : ProblemReport, optional
        Receives a ``file:line`` entry for each line that cannot be parsed
        (the line is skipped); without it such a line raises.

    Returns
    -------
    dict
        ``{speaker_id: {"gender", "age", "accent", "region"}}``.

    Raises
    ------
    ValueError
        On an unparsable line when no ``problems`` collector is given.

    Example
    -------
    >>> path = getfixture("tmp_path") / "speaker-info.txt"
    >>> _ = path.write_text(
    ...     "ID  AGE  GENDER  ACCENTS  REGION\\n"
    ...     "234  22  F    Scottish  West  Dumfries\\n"
    ...     "p280  25  F    English    France (mic2 files unavailable)\\n"
    ... )
    >>> info = read_speaker_info(path)
    >>> info["p234"]["region"], info["p280"]["region"]
    ('West Dumfries', 'France')
    """
    speakers = {}
    lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        text = re.sub(r"\(.*?\)", " ", line)
        fields = text.split()
        if not fields or fields[0].upper() == "ID":
            continue
        where = f"{path}:{number}"
        error = None
        if len(fields) < 4:
            error = f"expected ID AGE GENDER ACCENTS [REGION], got {line!r}"
        elif not fields[1].isdigit():
            error = f"age {fields[1]!r} is not a number in {line!r}"
        elif fields[2].upper() not in ("F", "M"):
            error = f"gender {fields[2]!r} is not F or M in {line!r}"
        speaker = "p" + fields[0] if fields[0].isdigit() else fields[0]
        if error is None and speaker in speakers:
            error = f"speaker {speaker} listed twice"
        if error is not None:
            if problems is None:
                raise ValueError(f"{where}: {error}")
            problems.add(where, error + "; line skipped")
            continue
        speakers[speaker] = {
            "gender": fields[2].upper(),
            "age": int(fields[1]),
            "accent": fields[3],
            "region": " ".join(fields[4:]),
        }
    return speakers


VCTK_RELEASES = ("paper", "0.80", "0.92")
NOT_THE_PAPERS_AUDIO = (
    "VCTK 0.92 (wav48_silence_trimmed/, silence-trimmed FLAC) is not the "
    "audio of the UniPool paper, whose numbers belong to VCTK 0.80 "
    "(wav48/, untrimmed): results will differ from the paper's"
)


def find_audio(data_folder, mic="mic1", release="paper"):
    """Finds VCTK's audio folder and the file pattern of its version.

    Arguments
    ---------
    data_folder : str or path
        The VCTK root (holds ``wav48_silence_trimmed`` or ``wav48``).
    mic : str
        Microphone of version 0.92 (``mic1`` or ``mic2``).
    release : str
        ``paper``: 0.80 when present (the authors read ``wav48/``), else
        0.92; ``0.80`` or ``0.92``: that release, which must be present.

    Returns
    -------
    tuple
        ``(audio folder, compiled file name pattern, version)``; the
        pattern's groups are the speaker and the utterance number.

    Raises
    ------
    ValueError
        When the layout asked for is not found.

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> (root / "wav48").mkdir()
    >>> (root / "wav48_silence_trimmed").mkdir()
    >>> folder, pattern, version = find_audio(root)
    >>> version, pattern.fullmatch("p225_031.wav").groups()
    ('0.80', ('p225', '031'))
    >>> find_audio(root, release="0.92")[2]
    '0.92'
    """
    if release not in VCTK_RELEASES:
        raise ValueError(
            f"vctk_release: {release!r} is not one of "
            f"{', '.join(VCTK_RELEASES)}"
        )
    root = pathlib.Path(data_folder)
    old, new = root / "wav48", root / "wav48_silence_trimmed"
    if release in ("paper", "0.80") and old.is_dir():
        return old, re.compile(r"(p\d+)_(\d{3})\.wav"), "0.80"
    if release in ("paper", "0.92") and new.is_dir():
        pattern = re.compile(rf"(p\d+)_(\d{{3}})_{re.escape(mic)}\.flac")
        return new, pattern, "0.92"
    wanted = {
        "paper": "'wav48/' (VCTK 0.80) or 'wav48_silence_trimmed/' (VCTK 0.92)",
        "0.80": "'wav48/' (VCTK 0.80, vctk_release: 0.80)",
        "0.92": "'wav48_silence_trimmed/' (VCTK 0.92, vctk_release: 0.92)",
    }[release]
    raise ValueError(
        f"{root}: no VCTK audio found, expected {wanted} in the data folder"
    )


def _paper_list_names():
    """Relative paths of the published lists VCTK needs."""
    names = [f"speakers/speaker-{split}.csv" for split in SPLITS]
    return names + ["trials/trials-valid.csv", "trials/trials-test.csv"]


def _speaker_meta(data_folder, problems):
    """Speaker meta of the corpus's speaker-info.txt (empty if absent)."""
    info_path = data_folder / "speaker-info.txt"
    if info_path.is_file():
        return read_speaker_info(info_path, problems)
    problems.add(info_path, "missing; speaker meta left empty")
    return {}


def _wanted_speakers(audio_root, meta, lists_folder, excluded, problems):
    """Speakers to prepare: those of the paper's lists when given, else
    those on disk with a speaker-info line; never the excluded ones."""
    on_disk = sorted(
        p.name
        for p in audio_root.iterdir()
        if p.is_dir() and p.name not in excluded
    )
    if lists_folder is None:
        for speaker in on_disk:
            if speaker not in meta:
                problems.add(
                    audio_root / speaker,
                    "unknown speaker: no line in speaker-info.txt; skipped",
                )
        return [speaker for speaker in on_disk if speaker in meta]
    listed = set()
    for split in SPLITS:
        path = lists_folder / "speakers" / f"speaker-{split}.csv"
        listed |= set(read_paper_speakers(path))
    for speaker in sorted(listed & set(excluded)):
        problems.add(
            speaker,
            "in the paper's speaker lists but in excluded_speakers; left out",
        )
    listed -= set(excluded)
    for speaker in sorted(set(on_disk) - listed):
        problems.add(
            audio_root / speaker, "not in the paper's speaker lists; ignored"
        )
    return sorted(listed)


def _utterance_files(audio_root, speakers, pattern, skip_below, problems):
    """``{utterance id: (speaker, source file)}`` of the kept utterances."""
    files = {}
    for speaker in speakers:
        folder = audio_root / speaker
        if not folder.is_dir():
            problems.add(folder, "speaker has no audio folder; skipped")
            continue
        n_matching = 0
        for path in sorted(folder.iterdir()):
            match = pattern.fullmatch(path.name)
            if match is None:
                continue
            n_matching += 1
            if match.group(1) != speaker:
                problems.add(path, f"file is not of speaker {speaker}; skipped")
            elif int(match.group(2)) >= skip_below:
                files[f"{speaker}_{match.group(2)}"] = (speaker, path)
        if not n_matching:
            problems.add(
                folder, f"no file named like {pattern.pattern}; skipped"
            )
    return files


def _convert(files, save_folder, options, num_workers, problems):
    """Converts the utterances to ``wav16k/``: ``{id: (speaker, wav,
    samples)}`` for those that could be read and are long enough
    (``options`` holds ``sample_rate`` and ``min_duration``)."""
    sample_rate = options["sample_rate"]
    targets = {
        utterance: save_folder / "wav16k" / speaker / f"{utterance}.wav"
        for utterance, (speaker, _) in files.items()
    }
    frames = convert_audio_files(
        [(files[u][1], targets[u]) for u in files],
        sample_rate,
        problems,
        num_workers,
    )
    records = {}
    for utterance, (speaker, source) in files.items():
        if targets[utterance] not in frames:
            continue
        length = frames[targets[utterance]]
        short = short_audio_problem(
            length, sample_rate, options["min_duration"]
        )
        if short is not None:
            problems.add(source, short)
            continue
        records[utterance] = (speaker, targets[utterance], length)
    return records


def _paper_split(lists_folder, meta, allow_missing, available, problems):
    """Speakers and trials of the paper's published lists."""
    speakers = {}
    for split in SPLITS:
        listed = read_paper_speakers(
            lists_folder / "speakers" / f"speaker-{split}.csv"
        )
        speakers[split] = sorted(listed)
        for speaker, row in listed.items():
            if speaker not in meta:  # fall back on the paper's meta
                meta[speaker] = {
                    key: row.get(column, "").strip()
                    for column, key in PAPER_META.items()
                }
    trials = {}
    for split in ("valid", "test"):
        path = lists_folder / "trials" / f"trials-{split}.csv"
        trials[split] = trials_with_audio(
            read_paper_trials(path), available, path, allow_missing, problems
        )
    return speakers, trials


def _generated_split(utterances, meta, n_valid, n_test, seed, n_per_class):
    """Our seeded gender-balanced split and balanced trials."""
    n_valid, n_test = scaled_heldout_counts(len(utterances), n_valid, n_test)
    genders = {s: meta[s]["gender"] for s in utterances}
    speakers = split_speakers(genders, n_valid, n_test, seed)
    bands = age_bands({s: meta[s]["age"] for s in utterances})
    trials = {}
    for offset, split in enumerate(("valid", "test"), start=1):
        trials[split] = balanced_trials(
            {s: utterances[s] for s in speakers[split]},
            meta,
            n_per_class=n_per_class,
            seed=seed + offset,
            bands=bands,
        )
    return speakers, trials


def _manifest_rows(ids, records, meta, sample_rate):
    """SpeechBrain manifest rows for the utterance IDs."""
    rows = []
    for utterance in sorted(ids):
        speaker, wav, frames = records[utterance]
        row = {
            "ID": utterance,
            "duration": round(frames / sample_rate, 5),
            "wav": str(wav),
            "start": 0,
            "stop": frames,
            "spk_id": speaker,
        }
        speaker_meta = meta.get(speaker, {})
        row.update({key: speaker_meta.get(key, "") for key in META_COLUMNS})
        rows.append(row)
    return rows


def prepare_vctk(
    data_folder,
    save_folder,
    split_source="paper",
    paper_lists=None,
    sample_rate=16000,
    seed=1234,
    n_valid_speakers=18,
    n_test_speakers=18,
    excluded_speakers=None,
    skip_utterances_below=25,
    mic="mic1",
    vctk_release="paper",
    num_workers=None,
    allow_missing_trials=False,
    n_trials_per_class=8000,
    min_duration=0.05,
    skip_prep=False,
):
    """Prepares VCTK for speaker verification (manifests and trials).

    Writes ``train.csv``, ``valid.csv``, ``test.csv`` (columns ``ID,
    duration, wav, start, stop, spk_id, gender, age, accent, region``; ID
    ``p329_050``, duration in seconds, start/stop in samples, ``wav`` an
    absolute path to the 16 kHz file) and ``valid_trials.csv``,
    ``test_trials.csv`` (``enrol, test, label`` + match columns). Valid and
    test manifests hold exactly the utterances their trials use. Problems
    (unreadable, truncated or too short audio, bad speaker-info lines,
    unknown speakers, both VCTK layouts present) go to
    ``prepare_problems.txt`` and the good data is used. Audio of any sample
    rate and channel count is resampled and down-mixed. Silent files are
    kept, as by every preparation (the header-only ones cannot tell
    silence without decoding every file).

    The preparation is skipped when its outputs exist and were made with the
    same options (recorded last, in ``prepare_vctk_opts.json``); every file
    is written atomically, and converted audio is reused across runs.

    With ``split_source="generate"``, ``n_valid_speakers`` and
    ``n_test_speakers`` are used when they leave two thirds of the speakers
    for training, and are otherwise scaled down to a third of the speakers
    together (at least two each; see
    :func:`data_prep.common.scaled_heldout_counts`); the split keeps the
    gender proportions (:func:`data_prep.common.split_speakers`); trials
    follow :func:`data_prep.trials.balanced_trials` with age bands computed
    over all speakers (seed + 1 for valid, seed + 2 for test).

    Arguments
    ---------
    data_folder : str or path
        The VCTK root (``wav48_silence_trimmed/`` or ``wav48/``, and
        ``speaker-info.txt``).
    save_folder : str or path
        Where manifests, trials and ``wav16k/`` are written.
    split_source : str
        ``"paper"`` (the authors' lists) or ``"generate"``.
    paper_lists : str or path, optional
        The paper's ``preprocess`` folder (holding ``speakers/`` and
        ``trials/``) or a base URL to download it from; default: the
        authors' repository (:data:`PAPER_LISTS_URL`).
    sample_rate : int
        Output sample rate.
    seed : int
        Seed of the generated split and trials.
    n_valid_speakers : int
        Validation speakers of the generated split.
    n_test_speakers : int
        Test speakers of the generated split.
    excluded_speakers : tuple of str, optional
        Speakers left out. Default: with ``split_source="generate"``, p280
        and p315 as the paper's text says; with ``"paper"``, none beyond the
        published lists, which leave out p315 but keep p280 in training
        (72 training speakers), so results stay comparable with the paper.
    skip_utterances_below : int
        Utterance numbers below this are dropped (paper: 25).
    mic : str
        Microphone of VCTK 0.92 (``mic1`` or ``mic2``).
    vctk_release : str
        ``paper`` (default): VCTK 0.80 when its ``wav48/`` is present, as
        the authors read it, else 0.92 with a warning that it is not the
        paper's audio; ``0.80`` or ``0.92`` to choose.
    num_workers : int, optional
        Processes converting audio (default: cores, at most 8).
    allow_missing_trials : bool
        Drop (and report) paper trials naming absent utterances instead of
        raising.
    n_trials_per_class : int
        Positive (and negative) trials per generated list.
    min_duration : float
        Utterances shorter than this (seconds, after conversion) are
        reported and skipped. The default, 0.05 s, is two frames of a
        wav2vec2-style model (which needs 400 samples for one).
    skip_prep : bool
        Return the output paths without preparing anything.

    Returns
    -------
    dict
        Paths of ``train``, ``valid``, ``test``, ``valid_trials``,
        ``test_trials`` and ``problems``.

    Raises
    ------
    ValueError
        On an unknown ``split_source``, a data folder without VCTK audio,
        paper trials naming absent utterances (unless allowed), or a split
        left empty.

    Example
    -------
    >>> from data_prep.mini_corpus import write_mini_vctk
    >>> root = getfixture("tmp_path")
    >>> _ = write_mini_vctk(
    ...     root / "vctk",
    ...     n_speakers=6,
    ...     utterances_per_speaker=3,
    ...     duration_range=(0.3, 0.5),
    ... )
    >>> paths = prepare_vctk(
    ...     root / "vctk",
    ...     root / "prep",
    ...     split_source="generate",
    ...     num_workers=1,
    ... )
    >>> sorted(paths)
    ['problems', 'test', 'test_trials', 'train', 'valid', 'valid_trials']
    """
    save_folder = pathlib.Path(save_folder).resolve()
    outputs = {split: save_folder / f"{split}.csv" for split in SPLITS}
    outputs["valid_trials"] = save_folder / "valid_trials.csv"
    outputs["test_trials"] = save_folder / "test_trials.csv"
    outputs["problems"] = save_folder / "prepare_problems.txt"
    if skip_prep:
        return outputs
    if split_source not in ("paper", "generate"):
        raise ValueError(
            f"split_source {split_source!r}: use 'paper' or 'generate'"
        )
    if excluded_speakers is None:
        excluded_speakers = () if split_source == "paper" else DROPPED_SPEAKERS
    data_folder = pathlib.Path(data_folder).resolve()
    options = {
        "data_folder": data_folder,
        "split_source": split_source,
        "paper_lists": paper_lists_option(paper_lists or PAPER_LISTS_URL)
        if split_source == "paper"
        else None,
        "sample_rate": sample_rate,
        "seed": seed,
        "n_valid_speakers": n_valid_speakers,
        "n_test_speakers": n_test_speakers,
        "excluded_speakers": sorted(excluded_speakers),
        "skip_utterances_below": skip_utterances_below,
        "mic": mic,
        "vctk_release": vctk_release,
        "allow_missing_trials": allow_missing_trials,
        "n_trials_per_class": n_trials_per_class,
        "min_duration": min_duration,
    }
    audio_root, pattern, version = find_audio(data_folder, mic, vctk_release)
    if version == "0.92":
        logger.warning(NOT_THE_PAPERS_AUDIO)
    lock = start_preparation(save_folder, "vctk", options, outputs.values())
    if lock is None:
        logger.info("VCTK already prepared in %s, skipping", save_folder)
        return outputs
    with lock:
        save_folder.mkdir(parents=True, exist_ok=True)
        problems = ProblemReport()

        both = (data_folder / "wav48").is_dir() and (
            data_folder / "wav48_silence_trimmed"
        ).is_dir()
        if both:
            unused = "wav48_silence_trimmed" if version == "0.80" else "wav48"
            problems.add(
                data_folder / unused,
                "VCTK 0.80 and 0.92 audio both present (the same utterance "
                f"IDs twice); the {version} files are used "
                f"(vctk_release: {vctk_release}), these ignored",
            )
        meta = _speaker_meta(data_folder, problems)
        lists_folder = None
        if split_source == "paper":
            lists_folder = paper_lists_folder(
                paper_lists or PAPER_LISTS_URL, save_folder, _paper_list_names()
            )
        wanted = _wanted_speakers(
            audio_root, meta, lists_folder, excluded_speakers, problems
        )
        logger.info(
            "VCTK %s: converting %d speakers' audio to %d Hz in %s",
            version,
            len(wanted),
            sample_rate,
            save_folder / "wav16k",
        )
        files = _utterance_files(
            audio_root, wanted, pattern, skip_utterances_below, problems
        )
        records = _convert(
            files,
            save_folder,
            {"sample_rate": sample_rate, "min_duration": min_duration},
            num_workers,
            problems,
        )
        if not records:
            problems.write(outputs["problems"])
            raise ValueError(
                f"{audio_root}: no usable {version} audio (mic={mic!r}); see "
                f"{outputs['problems']}"
            )
        if split_source == "paper":
            speakers, trials = _paper_split(
                lists_folder, meta, allow_missing_trials, set(records), problems
            )
        else:
            by_speaker = {}
            for utterance, (speaker, _, _) in records.items():
                by_speaker.setdefault(speaker, []).append(utterance)
            speakers, trials = _generated_split(
                by_speaker,
                meta,
                n_valid_speakers,
                n_test_speakers,
                seed,
                n_trials_per_class,
            )

        train_speakers = set(speakers["train"])
        ids = {"train": [u for u in records if records[u][0] in train_speakers]}
        for split in ("valid", "test"):
            ids[split] = {
                t[key] for t in trials[split] for key in ("enrol", "test")
            }
        problems.write(outputs["problems"])
        for split in SPLITS:
            if not ids[split]:
                raise ValueError(
                    f"VCTK {split} split is empty (its listed speakers: "
                    f"{speakers[split][:5]}...); see {outputs['problems']}"
                )
        fieldnames = MANIFEST_COLUMNS + META_COLUMNS
        for split in SPLITS:
            rows = _manifest_rows(ids[split], records, meta, sample_rate)
            write_csv_atomic(outputs[split], rows, fieldnames)
            logger.info("%s: %d utterances", outputs[split], len(rows))
        for split in ("valid", "test"):
            write_trials_csv(outputs[f"{split}_trials"], trials[split])
        mark_prepared(save_folder, "vctk", options)
    return outputs
