"""LibriSpeech preparation: manifests, speaker splits and trial lists.

Reads LibriSpeech as distributed: ``<subset>/<speaker>/<chapter>/
<speaker>-<chapter>-<utterance>.flac`` (16 kHz mono FLAC) and
``SPEAKERS.TXT`` (``;`` comments, ``|``-separated ``ID | SEX | SUBSET |
MINUTES | NAME``). The FLAC files are used in place: durations come from
their headers and the training pipeline reads FLAC directly; conversion to
wav is optional (``convert_flac=True``).

The UniPool paper trains on train-clean-100, train-clean-360 and
train-other-500 (2,338 speakers, 960 h). Its published validation and test
speakers are 73 each, and they are *not* only dev-clean and test-clean:
the lists hold the 40 speakers of dev-clean plus the 33 of dev-other
(validation) and the 40 of test-clean plus the 33 of test-other (test), and
the published ``trials-dev.csv`` / ``trials-test.csv`` (36,427 trials
each) use every utterance of those two subsets. So the validation subsets
are dev-clean and dev-other, the test subsets test-clean and test-other.

Speakers and trials are taken from the published lists
(``split_source="paper"``, default) or, with ``split_source="generate"``,
each role takes the speakers of its subsets and trials are generated with
:func:`data_prep.trials.balanced_trials`, stratified by gender as the
authors' LibriSpeech lists are (as many positives as negatives, the
negatives split evenly between same- and different-gender pairs).

Authors
 * unipool-sv developers 2026
"""

import logging
import os
import pathlib
import re
from collections import namedtuple

from data_prep.common import (
    ProblemReport,
    convert_audio_files,
    mark_prepared,
    paper_lists_folder,
    paper_lists_option,
    scan_audio,
    short_audio_problem,
    start_preparation,
    trials_with_audio,
    write_csv_atomic,
)
from data_prep.trials import (
    balanced_trials,
    read_paper_speakers,
    read_paper_trials,
    write_trials_csv,
)

logger = logging.getLogger(__name__)

# The authors' published lists (MIT), pinned to the commit they were read at.
PAPER_LISTS_URL = (
    "https://raw.githubusercontent.com/sadPororo/UniPool-SV/"
    "90c75f50918a1a709821ce7d5254170454b2c47d/data/LibriSpeech/preprocess"
)
TRAIN_SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500")
VALID_SUBSETS = ("dev-clean", "dev-other")
TEST_SUBSETS = ("test-clean", "test-other")
SPLITS = ("train", "valid", "test")
# Our split name -> the published trial list.
PAPER_TRIALS = {"valid": "trials-dev.csv", "test": "trials-test.csv"}
MANIFEST_COLUMNS = ("ID", "duration", "wav", "start", "stop", "spk_id")
META_COLUMNS = ("gender", "subset")
UTTERANCE_NAME = re.compile(r"(\d+)-(\d+)-(\d+)\.flac")
# How many IDs a grouped problem line names.
N_EXAMPLES = 5

Utterance = namedtuple("Utterance", ["speaker", "subset", "path"])
Utterance.__doc__ = """One FLAC file of the corpus: its speaker ID, subset
folder name and path (see :func:`find_utterances`)."""


def read_speakers_txt(path, problems=None):
    """Reads LibriSpeech's ``SPEAKERS.TXT``.

    Lines starting with ``;`` are comments; the others hold ``ID | SEX |
    SUBSET | MINUTES | NAME``. The name may itself hold ``|`` (speaker 60
    is ``|CBW|Simon``), so a line is split at its first four bars only.

    Arguments
    ---------
    path : str or path
        The ``SPEAKERS.TXT`` file.
    problems : ProblemReport, optional
        Receives a ``file:line`` entry for each line that cannot be parsed
        (the line is skipped); without it such a line raises.

    Returns
    -------
    dict
        ``{speaker_id: {"gender", "subset", "minutes", "name"}}``.

    Raises
    ------
    ValueError
        On an unparsable line when no ``problems`` collector is given.

    Example
    -------
    >>> path = getfixture("tmp_path") / "SPEAKERS.TXT"
    >>> _ = path.write_text(
    ...     ";ID  |SEX| SUBSET           |MINUTES| NAME\\n"
    ...     "60   | M | train-clean-100  | 20.18 | |CBW|Simon\\n"
    ... )
    >>> speaker = read_speakers_txt(path)["60"]
    >>> speaker["gender"], speaker["subset"], speaker["name"]
    ('M', 'train-clean-100', '|CBW|Simon')
    """
    speakers = {}
    lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = [field.strip() for field in line.split("|", 4)]
        error = None
        if len(fields) != 5:
            error = f"expected 'ID | SEX | SUBSET | MINUTES | NAME': {line!r}"
        elif not fields[0].isdigit():
            error = f"speaker ID {fields[0]!r} is not a number in {line!r}"
        elif fields[1].upper() not in ("F", "M"):
            error = f"sex {fields[1]!r} is not F or M in {line!r}"
        elif not re.fullmatch(r"\d+(\.\d*)?", fields[3]):
            error = f"minutes {fields[3]!r} is not a number in {line!r}"
        elif fields[0] in speakers:
            error = f"speaker {fields[0]} listed twice"
        if error is not None:
            if problems is None:
                raise ValueError(f"{path}:{number}: {error}")
            problems.add(f"{path}:{number}", error + "; line skipped")
            continue
        speakers[fields[0]] = {
            "gender": fields[1].upper(),
            "subset": fields[2],
            "minutes": float(fields[3]),
            "name": fields[4],
        }
    return speakers


def _sorted_dirs(folder):
    """Sub-folders of ``folder`` in name order."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir())


def _kind(entry):
    """``"file"``, or what else a folder entry is, for a problem line."""
    if entry.is_file():
        return "file"
    if entry.is_dir():
        return "a folder"
    return "a broken link or special entry"


def find_utterances(data_folder, subsets, problems=None):
    """Finds the FLAC utterances of LibriSpeech subsets (no audio read).

    A file must sit at ``<subset>/<speaker>/<chapter>/<speaker>-<chapter>-
    <utterance>.flac``; a FLAC file whose name does not fit its folders,
    an utterance ID found twice, a ``.flac`` name that is not a file (a
    folder, a broken link) and a subset folder that does not exist are
    reported and skipped. Other files (``.trans.txt``) are ignored.

    Arguments
    ---------
    data_folder : str or path
        The LibriSpeech root (holds the subset folders).
    subsets : iterable of str
        Subset folder names, e.g. ``("train-clean-100",)``.
    problems : ProblemReport, optional
        Receives the problems; without it the first one raises.

    Returns
    -------
    dict
        ``{utterance id: Utterance(speaker, subset, path)}`` sorted by ID.

    Raises
    ------
    ValueError
        On a problem when no ``problems`` collector is given.

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> chapter = root / "dev-clean" / "84" / "121123"
    >>> chapter.mkdir(parents=True)
    >>> _ = (chapter / "84-121123-0000.flac").write_bytes(b"")
    >>> find_utterances(root, ["dev-clean"])["84-121123-0000"].speaker
    '84'
    """
    root = pathlib.Path(data_folder)

    def _report(where, message):
        if problems is None:
            raise ValueError(f"{where}: {message}")
        problems.add(where, message)

    found = {}
    for subset in subsets:
        subset_folder = root / subset
        if not subset_folder.is_dir():
            _report(subset_folder, "subset folder not found; subset skipped")
            continue
        for speaker in _sorted_dirs(subset_folder):
            for chapter in _sorted_dirs(subset_folder / speaker):
                folder = subset_folder / speaker / chapter
                with os.scandir(folder) as entries:
                    listed = sorted((e.name, _kind(e)) for e in entries)
                for name, kind in listed:
                    if not name.endswith(".flac"):
                        continue
                    if kind != "file":
                        _report(folder / name, f"{kind}, not a file; skipped")
                        continue
                    match = UTTERANCE_NAME.fullmatch(name)
                    if match is None or match.group(1, 2) != (
                        speaker,
                        chapter,
                    ):
                        _report(
                            folder / name,
                            "not named <speaker>-<chapter>-<utterance>.flac "
                            "after its folders; skipped",
                        )
                        continue
                    utterance = name[: -len(".flac")]
                    if utterance in found:
                        _report(
                            folder / name,
                            f"utterance {utterance} also in "
                            f"{found[utterance].path}; skipped",
                        )
                        continue
                    found[utterance] = Utterance(speaker, subset, folder / name)
    return dict(sorted(found.items()))


def _speaker_order(speaker):
    """Sort key putting numeric speaker IDs in numeric order."""
    return len(str(speaker)), str(speaker)


def _examples(items):
    """A few items of a collection, for a grouped problem line."""
    items = sorted(items, key=_speaker_order)
    more = ", ..." if len(items) > N_EXAMPLES else ""
    return ", ".join(str(item) for item in items[:N_EXAMPLES]) + more


def _audio_records(utterances, save_folder, options, num_workers, problems):
    """``{id: (speaker, subset, audio path, samples)}`` of usable files.

    Without conversion the FLAC headers give the lengths, and a file whose
    rate is not ``sample_rate`` is reported and skipped; with conversion
    every file is written once as a ``sample_rate`` mono wav. Files shorter
    than ``min_duration`` are reported and skipped. ``options`` holds
    ``sample_rate``, ``convert_flac`` and ``min_duration``.
    """
    records = _readable_records(
        utterances, save_folder, options, num_workers, problems
    )
    for utt in list(records):
        short = short_audio_problem(
            records[utt][3], options["sample_rate"], options["min_duration"]
        )
        if short is not None:
            problems.add(utterances[utt].path, short)
            del records[utt]
    return records


def _readable_records(utterances, save_folder, options, num_workers, problems):
    """The records of :func:`_audio_records` before the length check."""
    sample_rate = options["sample_rate"]
    records = {}
    if options["convert_flac"]:
        targets = {
            utt: save_folder
            / "wav16k"
            / info.subset
            / info.speaker
            / info.path.parent.name
            / f"{utt}.wav"
            for utt, info in utterances.items()
        }
        frames = convert_audio_files(
            [(info.path, targets[utt]) for utt, info in utterances.items()],
            sample_rate,
            problems,
            num_workers,
        )
        for utt, info in utterances.items():
            if targets[utt] in frames:
                records[utt] = (
                    info.speaker,
                    info.subset,
                    targets[utt],
                    frames[targets[utt]],
                )
        return records
    headers = scan_audio(
        [info.path for info in utterances.values()], problems, num_workers
    )
    for utt, info in utterances.items():
        header = headers.get(info.path)
        if header is None:
            continue
        if header.sample_rate != sample_rate:
            problems.add(
                info.path,
                f"sampled at {header.sample_rate} Hz, not {sample_rate} Hz; "
                "skipped (set convert_flac=True to resample)",
            )
            continue
        records[utt] = (info.speaker, info.subset, info.path, header.frames)
    return records


def _paper_split(lists_folder, records, meta, allow_missing, problems):
    """Speakers and trials of the published lists, checked against the
    corpus; fills ``meta`` from the lists for speakers SPEAKERS.TXT lacks."""
    on_disk = {record[0] for record in records.values()}
    speakers, listed = {}, set()
    for split in SPLITS:
        path = lists_folder / "speakers" / f"speaker-{split}.csv"
        rows = read_paper_speakers(path)
        repeated = sorted(listed & set(rows), key=_speaker_order)
        if repeated:
            raise ValueError(
                f"{path}: speakers {_examples(repeated)} are also in another "
                "of the paper's speaker lists"
            )
        listed |= set(rows)
        for speaker, row in rows.items():
            if speaker not in meta:
                meta[speaker] = {
                    "gender": row.get("SEX", "").strip().upper(),
                    "subset": row.get("SUBSET", "").strip(),
                }
        absent = sorted(set(rows) - on_disk, key=_speaker_order)
        if absent:
            problems.add(
                path,
                f"{len(absent)} of its {len(rows)} speakers have no audio in "
                f"the subsets prepared (e.g. {_examples(absent)}); left out",
            )
        speakers[split] = sorted(set(rows) & on_disk, key=_speaker_order)
    unlisted = sorted(on_disk - listed, key=_speaker_order)
    if unlisted:
        problems.add(
            lists_folder / "speakers",
            f"{len(unlisted)} speaker(s) of the corpus are in none of the "
            f"paper's speaker lists (e.g. {_examples(unlisted)}); ignored",
        )
    trials = {}
    for split, name in PAPER_TRIALS.items():
        path = lists_folder / "trials" / name
        trials[split] = trials_with_audio(
            read_paper_trials(path), set(records), path, allow_missing, problems
        )
    return speakers, trials


def _generated_split(records, subsets, meta, options, problems):
    """Each role's speakers from its subsets, gender-balanced trials;
    speakers without a SPEAKERS.TXT line are left out. ``options`` holds
    ``speakers_txt``, ``n_per_class`` and ``seed``."""
    utterances = {split: {} for split in SPLITS}
    unknown = set()
    for utt, (speaker, subset, _, _) in records.items():
        if speaker not in meta:
            unknown.add(speaker)
            continue
        for split in SPLITS:
            if subset in subsets[split]:
                utterances[split].setdefault(speaker, []).append(utt)
    if unknown:
        problems.add(
            options["speakers_txt"],
            f"{len(unknown)} speaker(s) have no line (e.g. "
            f"{_examples(unknown)}); left out",
        )
    held_out = set(utterances["valid"]) | set(utterances["test"])
    both = set(utterances["train"]) & held_out
    both |= set(utterances["valid"]) & set(utterances["test"])
    if both:
        problems.add(
            options["speakers_txt"].parent,
            f"{len(both)} speaker(s) found in the subsets of two roles "
            f"(e.g. {_examples(both)}); left out of both",
        )
    speakers, trials = {}, {}
    for split in SPLITS:
        kept = {s: u for s, u in utterances[split].items() if s not in both}
        speakers[split] = sorted(kept, key=_speaker_order)
        if split == "train":
            continue
        offset = SPLITS.index(split)
        try:
            trials[split] = balanced_trials(
                kept,
                {s: {"gender": meta[s]["gender"]} for s in kept},
                n_per_class=options["n_per_class"],
                seed=options["seed"] + offset,
                stratify_by=("gender",),
            )
        except ValueError as error:
            raise ValueError(
                f"LibriSpeech {split} subsets {list(subsets[split])}: {error}"
            ) from error
    return speakers, trials


def _manifest_rows(ids, records, meta, sample_rate):
    """SpeechBrain manifest rows for the utterance IDs."""
    rows = []
    for utt in sorted(ids):
        speaker, subset, path, frames = records[utt]
        rows.append(
            {
                "ID": utt,
                "duration": round(frames / sample_rate, 5),
                "wav": str(path),
                "start": 0,
                "stop": frames,
                "spk_id": speaker,
                "gender": meta.get(speaker, {}).get("gender", ""),
                "subset": subset,
            }
        )
    return rows


def _paper_list_names():
    """Relative paths of the published lists LibriSpeech needs."""
    names = [f"speakers/speaker-{split}.csv" for split in SPLITS]
    return names + [f"trials/{name}" for name in PAPER_TRIALS.values()]


def prepare_librispeech(
    data_folder,
    save_folder,
    split_source="paper",
    paper_lists=None,
    train_subsets=TRAIN_SUBSETS,
    valid_subsets=VALID_SUBSETS,
    test_subsets=TEST_SUBSETS,
    sample_rate=16000,
    convert_flac=False,
    seed=1234,
    n_trials_per_class=18000,
    allow_missing_trials=False,
    num_workers=None,
    min_duration=0.05,
    skip_prep=False,
):
    """Prepares LibriSpeech for speaker verification (manifests and trials).

    Writes ``train.csv``, ``valid.csv``, ``test.csv`` (columns ``ID,
    duration, wav, start, stop, spk_id, gender, subset``; ID
    ``6829-68771-0026``, duration in seconds from the FLAC header,
    start/stop in samples, ``wav`` the absolute path of the FLAC file, or
    of its wav copy with ``convert_flac=True``; ``gender`` from
    SPEAKERS.TXT) and ``valid_trials.csv``, ``test_trials.csv`` (``enrol,
    test, label`` + match columns). Valid and test manifests hold exactly
    the utterances their trials use; train holds every utterance of the
    training speakers. Problems (unreadable, truncated or too short audio,
    bad SPEAKERS.TXT lines, missing subsets or listed speakers) go to
    ``prepare_problems.txt`` and the good data is used. Stereo files are
    kept (the training pipeline down-mixes), and so are silent ones
    (telling silence would take decoding every file).

    The preparation is skipped when its outputs exist and were made with
    the same options (recorded last, in ``prepare_librispeech_opts.json``);
    every file is written atomically and converted audio is reused.

    With ``split_source="paper"`` each speaker's role comes from the
    published ``speaker-{train,valid,test}.csv`` (wherever among the
    subsets its audio is) and the trials are ``trials-dev.csv`` (valid) and
    ``trials-test.csv`` (test), their paths (``test-clean/6829/
    6829-68771-0026.wav``) mapped to utterance IDs. With ``"generate"``,
    the speakers of ``train_subsets`` train, those of ``valid_subsets`` and
    ``test_subsets`` give trials from :func:`data_prep.trials.
    balanced_trials` (gender-stratified negatives; seed + 1 for valid,
    seed + 2 for test).

    Arguments
    ---------
    data_folder : str or path
        The LibriSpeech root (the subset folders and ``SPEAKERS.TXT``).
    save_folder : str or path
        Where manifests and trials (and ``wav16k/``) are written.
    split_source : str
        ``"paper"`` (the authors' lists) or ``"generate"``.
    paper_lists : str or path, optional
        The paper's ``preprocess`` folder (holding ``speakers/`` and
        ``trials/``) or a base URL to download it from; default: the
        authors' repository (:data:`PAPER_LISTS_URL`).
    train_subsets : tuple of str
        Subsets of the training speakers (paper: the three train sets).
    valid_subsets : tuple of str
        Subsets of the validation speakers (paper: dev-clean, dev-other).
    test_subsets : tuple of str
        Subsets of the test speakers (paper: test-clean, test-other).
    sample_rate : int
        The sample rate the model expects; FLAC files at another rate are
        skipped unless ``convert_flac`` is set.
    convert_flac : bool
        Write every utterance as a mono wav at ``sample_rate`` into
        ``<save_folder>/wav16k/<subset>/<speaker>/<chapter>/`` (the
        authors' step; not needed, the FLAC files are read directly).
    seed : int
        Seed of the generated trials.
    n_trials_per_class : int
        Positive (and negative) trials per generated list (the published
        lists hold 18,031 positives).
    allow_missing_trials : bool
        Drop (and report) published trials naming absent utterances
        instead of raising.
    num_workers : int, optional
        Processes reading headers or converting (default: cores, at most
        8).
    min_duration : float
        Files shorter than this (seconds) are reported and skipped. The
        default, 0.05 s, is two frames of a wav2vec2-style model (which
        needs 400 samples for one).
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
        On an unknown ``split_source``, a subset given to two roles, a data
        folder without usable FLAC files, published trials naming absent
        utterances (unless allowed), or a split left empty.

    Example
    -------
    >>> from data_prep.mini_corpus import write_mini_librispeech
    >>> root = getfixture("tmp_path")
    >>> _ = write_mini_librispeech(
    ...     root / "LibriSpeech",
    ...     n_speakers=2,
    ...     chapters_per_speaker=1,
    ...     utterances_per_chapter=2,
    ...     duration_range=(0.3, 0.5),
    ... )
    >>> paths = prepare_librispeech(
    ...     root / "LibriSpeech",
    ...     root / "prep",
    ...     split_source="generate",
    ...     train_subsets=("train-clean-100",),
    ...     valid_subsets=("dev-clean",),
    ...     test_subsets=("test-clean",),
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
    subsets = {
        "train": tuple(train_subsets),
        "valid": tuple(valid_subsets),
        "test": tuple(test_subsets),
    }
    every_subset = sum(subsets.values(), ())
    repeated = sorted({s for s in every_subset if every_subset.count(s) > 1})
    if repeated:
        raise ValueError(
            f"LibriSpeech subsets {repeated} are given to more than one of "
            "train_subsets, valid_subsets and test_subsets"
        )
    data_folder = pathlib.Path(data_folder).resolve()
    lists_source = paper_lists or PAPER_LISTS_URL
    options = {
        "data_folder": data_folder,
        "split_source": split_source,
        "paper_lists": paper_lists_option(lists_source)
        if split_source == "paper"
        else None,
        "subsets": subsets,
        "sample_rate": sample_rate,
        "convert_flac": convert_flac,
        "seed": seed,
        "n_trials_per_class": n_trials_per_class,
        "allow_missing_trials": allow_missing_trials,
        "min_duration": min_duration,
    }
    lock = start_preparation(
        save_folder, "librispeech", options, outputs.values()
    )
    if lock is None:
        logger.info("LibriSpeech already prepared in %s, skipping", save_folder)
        return outputs
    with lock:
        save_folder.mkdir(parents=True, exist_ok=True)
        problems = ProblemReport()

        speakers_txt = data_folder / "SPEAKERS.TXT"
        meta = {}
        if speakers_txt.is_file():
            meta = read_speakers_txt(speakers_txt, problems)
        else:
            problems.add(speakers_txt, "missing; speaker genders left empty")
        lists_folder = None
        if split_source == "paper":
            lists_folder = paper_lists_folder(
                lists_source, save_folder, _paper_list_names()
            )
        utterances = find_utterances(data_folder, every_subset, problems)
        logger.info(
            "LibriSpeech: reading %d FLAC headers from %s",
            len(utterances),
            data_folder,
        )
        records = _audio_records(
            utterances,
            save_folder,
            {
                "sample_rate": sample_rate,
                "convert_flac": convert_flac,
                "min_duration": min_duration,
            },
            num_workers,
            problems,
        )
        if not records:
            problems.write(outputs["problems"])
            raise ValueError(
                f"{data_folder}: no usable LibriSpeech FLAC file in the "
                f"subsets {list(every_subset)}; see {outputs['problems']}"
            )
        if split_source == "paper":
            speakers, trials = _paper_split(
                lists_folder, records, meta, allow_missing_trials, problems
            )
        else:
            speakers, trials = _generated_split(
                records,
                subsets,
                meta,
                {
                    "speakers_txt": speakers_txt,
                    "n_per_class": n_trials_per_class,
                    "seed": seed,
                },
                problems,
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
                    f"LibriSpeech {split} split is empty (subsets "
                    f"{list(subsets[split])}); see {outputs['problems']}"
                )
        fieldnames = MANIFEST_COLUMNS + META_COLUMNS
        for split in SPLITS:
            rows = _manifest_rows(ids[split], records, meta, sample_rate)
            write_csv_atomic(outputs[split], rows, fieldnames)
            logger.info(
                "%s: %d utterances of %d speakers",
                outputs[split],
                len(rows),
                len({row["spk_id"] for row in rows}),
            )
        for split in ("valid", "test"):
            write_trials_csv(outputs[f"{split}_trials"], trials[split])
        mark_prepared(save_folder, "librispeech", options)
    return outputs
