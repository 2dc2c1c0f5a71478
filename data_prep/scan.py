"""Fast, resumable scan of a large ``speaker/session/utterance`` audio tree.

Made for VoxCeleb2 (about 1.1M files in 150k video folders): the duration
of each file comes from its header (RIFF chunks parsed directly for WAV,
soundfile for anything else), never from decoding. Each speaker folder is
scanned into its own cache CSV of manifest rows, written as the files are
read, so that no per-file object outlives its row; a sidecar JSON written
last marks the speaker done and records the folder's signature (names and
modification times of the session folders). A killed scan resumes with the
speakers it had not finished, and a speaker whose folder changed is scanned
again. Speakers are scanned in parallel processes, with a progress bar.

Manifests are then streamed from the caches line by line
(:func:`write_manifest_from_cache`), so their size never has to fit in
memory either.

Authors
 * unipool-sv developers 2026
"""

import csv
import json
import logging
import math
import multiprocessing
import os
import sys
import zlib
from collections import namedtuple

from data_prep.audio_header import audio_info
from data_prep.common import atomic_open, default_num_workers, die_with_parent

logger = logging.getLogger(__name__)

CACHE_COLUMNS = ("ID", "duration", "wav", "start", "stop", "spk_id", "video")
# Bump when the rows a scan writes change, so that old caches are redone.
CACHE_VERSION = 1

ScanSummary = namedtuple(
    "ScanSummary", ["n_speakers", "n_files", "n_reused", "problems"]
)


def read_wav_header(path):
    """Reads frames, rate and channels of a WAV (or any audio) file.

    The scanner's header reader: :func:`data_prep.audio_header.audio_info`,
    which parses a WAV file's RIFF chunks directly (one 4 kB read for usual
    files, several times faster than ``soundfile.info``) and hands other
    files to soundfile.

    Arguments
    ---------
    path : str or path
        The WAV file.

    Returns
    -------
    AudioInfo
        ``(frames, sample_rate, channels)``.

    Raises
    ------
    ValueError
        When the file is unreadable, holds no samples, or is shorter than
        its header says (a truncated copy); the message names the file.

    Example
    -------
    >>> import numpy, soundfile
    >>> path = getfixture("tmp_path") / "a.wav"
    >>> soundfile.write(path, numpy.zeros((800, 2)), 16000)
    >>> read_wav_header(path)
    AudioInfo(frames=800, sample_rate=16000, channels=2)
    """
    return audio_info(path)


# ----------------------------------------------------------- one speaker
def cache_paths(cache_folder, speaker):
    """The cache CSV and its completion record for one speaker.

    Arguments
    ---------
    cache_folder : str or path
        Folder of the scan caches.
    speaker : str
        The speaker ID.

    Returns
    -------
    tuple of str
        ``(<cache_folder>/<speaker>.csv, <cache_folder>/<speaker>.json)``.

    Example
    -------
    >>> [os.path.basename(p) for p in cache_paths("/tmp/scan", "id10001")]
    ['id10001.csv', 'id10001.json']
    """
    base = os.path.join(str(cache_folder), speaker)
    return base + ".csv", base + ".json"


def _folder_signature(folder, sessions):
    """Changes when a session folder is added, removed or changed."""
    stamps = [f"{folder}:{os.stat(folder).st_mtime_ns}"]
    stamps += [f"{entry.name}:{entry.stat().st_mtime_ns}" for entry in sessions]
    return "%d-%08x" % (len(sessions), zlib.crc32("\n".join(stamps).encode()))


def _is_done(record_path, csv_path, signature, rules):
    """Whether the speaker's cache was completed for this very folder and
    the same ``(sample_rate, min_duration)``."""
    try:
        with open(record_path, encoding="utf-8") as source:
            record = json.load(source)
    except (OSError, ValueError):
        return None
    same = (
        record.get("version") == CACHE_VERSION
        and record.get("signature") == signature
        and record.get("sample_rate") == rules[0]
        and record.get("min_duration", 0.0) == rules[1]
    )
    return record if same and os.path.isfile(csv_path) else None


def scan_speaker(
    folder, speaker, cache_folder, sample_rate=16000, min_duration=0.0
):
    """Scans one ``<speaker>/<session>/<file>.wav`` folder into its cache.

    Rows (columns :data:`CACHE_COLUMNS`; ID ``<speaker>--<session>--<file
    stem>``, duration in seconds, ``wav`` an absolute path, ``start`` 0,
    ``stop`` the number of samples, ``video`` the session) are written as
    the headers are read, sessions and files in sorted order. Files with
    another sample rate, unreadable or truncated files, files shorter than
    ``min_duration``, files whose ID an earlier file of the session has
    (``00001.wav`` and ``00001.WAV``) and files outside a session folder
    are left out and reported. Nothing is done when the cache is complete
    for the same options and the folder's signature has not changed.

    Arguments
    ---------
    folder : str or path
        The speaker's folder.
    speaker : str
        The speaker ID.
    cache_folder : str or path
        Where ``<speaker>.csv`` and ``<speaker>.json`` are written.
    sample_rate : int
        The sample rate every file must have.
    min_duration : float
        Shortest file kept, in seconds.

    Returns
    -------
    tuple
        ``(speaker, number of rows, reused (bool))``.

    Example
    -------
    >>> import numpy, soundfile
    >>> root = getfixture("tmp_path")
    >>> (root / "id1" / "vid").mkdir(parents=True)
    >>> soundfile.write(root / "id1/vid/00001.wav", numpy.zeros(80), 16000)
    >>> scan_speaker(root / "id1", "id1", root / "cache")
    ('id1', 1, False)
    >>> print(open(root / "cache" / "id1.csv").read().split()[1][:22])
    id1--vid--00001,0.005,
    >>> scan_speaker(root / "id1", "id1", root / "cache")
    ('id1', 1, True)
    """
    folder = os.path.abspath(str(folder))
    csv_path, record_path = cache_paths(cache_folder, speaker)
    with os.scandir(folder) as entries:
        entries = sorted(entries, key=lambda entry: entry.name)
    sessions = [entry for entry in entries if entry.is_dir()]
    signature = _folder_signature(folder, sessions)
    rules = (sample_rate, min_duration)
    record = _is_done(record_path, csv_path, signature, rules)
    if record is not None:
        return speaker, record["n_rows"], True
    problems = [
        f"{entry.path}: not in a video folder; skipped"
        for entry in entries
        if entry.is_file() and entry.name.lower().endswith(".wav")
    ]
    n_rows = 0
    os.makedirs(str(cache_folder), exist_ok=True)
    with atomic_open(csv_path, "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CACHE_COLUMNS)
        for session in sessions:
            n_rows += _scan_session(session, speaker, rules, writer, problems)
    record = {
        "version": CACHE_VERSION,
        "folder": folder,
        "signature": signature,
        "sample_rate": sample_rate,
        "min_duration": min_duration,
        "n_rows": n_rows,
        "problems": problems,
    }
    with atomic_open(record_path, "w") as out:
        json.dump(record, out, indent=1)
    return speaker, n_rows, False


def _scan_session(session, speaker, rules, writer, problems):
    """Writes the rows of one session folder; returns how many. ``rules``
    is ``(sample_rate, min_duration)``."""
    sample_rate, min_duration = rules
    min_samples = math.ceil(min_duration * sample_rate - 1e-6)
    first_of_id = {}
    with os.scandir(session.path) as entries:
        names = sorted(
            entry.name
            for entry in entries
            if entry.name.lower().endswith(".wav")
            and not entry.name.startswith(".")
        )
    n_rows = 0
    for name in names:
        path = os.path.join(session.path, name)
        if "\n" in name or "\r" in name or "," in session.name:
            problems.append(f"{path!r}: name unusable in a manifest; skipped")
            continue
        try:
            info = read_wav_header(path)
        except ValueError as error:
            problems.append(f"{error}; file skipped")
            continue
        if info.sample_rate != sample_rate:
            problems.append(
                f"{path}: sample rate {info.sample_rate}, expected "
                f"{sample_rate}; file skipped (convert it first)"
            )
            continue
        if info.frames < min_samples:
            problems.append(
                f"{path}: only {round(info.frames / sample_rate, 5)} s long "
                f"({info.frames} samples), under min_duration="
                f"{min_duration} s; file skipped"
            )
            continue
        stem = name[: -len(".wav")]
        if stem in first_of_id:
            problems.append(
                f"{path}: same utterance ID as {first_of_id[stem]}; file "
                "skipped"
            )
            continue
        first_of_id[stem] = path
        writer.writerow(
            (
                f"{speaker}--{session.name}--{stem}",
                round(info.frames / sample_rate, 5),
                path,
                0,
                info.frames,
                speaker,
                session.name,
            )
        )
        n_rows += 1
    return n_rows


def _scan_job(job):
    """Pool worker: scans one speaker; errors become problem lines."""
    folder, speaker, cache_folder, rules = job
    try:
        return scan_speaker(folder, speaker, cache_folder, *rules) + (None,)
    except OSError as error:
        return speaker, 0, False, f"{folder}: cannot be scanned ({error})"


# ---------------------------------------------------------- many speakers
def scan_speakers(
    speaker_folders,
    cache_folder,
    sample_rate=16000,
    num_workers=None,
    progress=True,
    min_duration=0.0,
):
    """Scans many speaker folders into per-speaker caches, resumably.

    Arguments
    ---------
    speaker_folders : dict
        ``{speaker_id: folder}``.
    cache_folder : str or path
        Where the per-speaker caches go (see :func:`scan_speaker`).
    sample_rate : int
        The sample rate every file must have.
    num_workers : int, optional
        Processes scanning speakers in parallel (default: cores, at most
        8); 1 scans in this process.
    progress : bool
        Show a progress bar (speakers, with the file count).
    min_duration : float
        Shortest file kept, in seconds.

    Returns
    -------
    ScanSummary
        ``(n_speakers, n_files, n_reused, problems)``: ``n_reused``
        speakers came from a complete cache; ``problems`` lists the files
        (or folders) left out and why, from new and reused caches alike.

    Example
    -------
    >>> import numpy, soundfile
    >>> root = getfixture("tmp_path")
    >>> for speaker in ("id1", "id2"):
    ...     (root / speaker / "v").mkdir(parents=True)
    ...     soundfile.write(root / speaker / "v/1.wav", numpy.zeros(9), 16000)
    >>> folders = {s: root / s for s in ("id1", "id2")}
    >>> scan_speakers(folders, root / "cache", progress=False)
    ScanSummary(n_speakers=2, n_files=2, n_reused=0, problems=[])
    """
    from tqdm import tqdm

    if num_workers is None:
        num_workers = default_num_workers()
    rules = (sample_rate, min_duration)
    jobs = [
        (str(speaker_folders[speaker]), speaker, str(cache_folder), rules)
        for speaker in sorted(speaker_folders)
    ]
    os.makedirs(str(cache_folder), exist_ok=True)
    n_files, n_reused, problems = 0, 0, []
    bar = tqdm(total=len(jobs), unit="spk", desc="scan", disable=not progress)
    with bar:
        for _, n_rows, reused, error in _map_jobs(jobs, num_workers):
            n_files += n_rows
            n_reused += int(reused)
            if error is not None:
                problems.append(error)
            bar.update(1)
            bar.set_postfix(files=n_files, refresh=False)
    for speaker in sorted(speaker_folders):
        record = cache_paths(cache_folder, speaker)[1]
        if os.path.isfile(record):
            with open(record, encoding="utf-8") as source:
                problems += json.load(source)["problems"]
    return ScanSummary(len(jobs), n_files, n_reused, problems)


def _map_jobs(jobs, num_workers):
    """Runs the scan jobs, yielding results as they come."""
    if num_workers <= 1 or len(jobs) < 2:
        yield from map(_scan_job, jobs)
        return
    # Fork: the workers need nothing but this module; spawn would re-import
    # the caller's __main__.
    method = "fork" if sys.platform.startswith("linux") else None
    context = multiprocessing.get_context(method)
    with context.Pool(
        min(num_workers, len(jobs)),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        yield from pool.imap_unordered(_scan_job, jobs, chunksize=4)


# ---------------------------------------------------------- reading back
def iter_cache_lines(cache_folder, speakers):
    """Yields the raw CSV lines (no header) of the speakers' caches.

    Arguments
    ---------
    cache_folder : str or path
        Folder of the scan caches.
    speakers : iterable of str
        Speakers to read, in this order; a speaker without a cache is
        skipped.

    Yields
    ------
    str
        One manifest line (ending with a newline), in cache order.

    Example
    -------
    >>> folder = str(getfixture("tmp_path"))
    >>> with open(os.path.join(folder, "s.csv"), "w") as out:
    ...     _ = out.write("ID,duration\\ns--v--1,1.0\\n")
    >>> list(iter_cache_lines(folder, ["s", "absent"]))
    ['s--v--1,1.0\\n']
    """
    for speaker in speakers:
        path = cache_paths(cache_folder, speaker)[0]
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", newline="") as source:
            next(source, None)
            yield from source


def line_id(line):
    """The utterance ID of a cache line (its first field).

    Arguments
    ---------
    line : str
        A CSV line written by :func:`scan_speaker`.

    Returns
    -------
    str
        The ID (IDs never hold commas or quotes).

    Example
    -------
    >>> line_id("id1--v--00001,1.5,/a.wav,0,24000,id1,v\\n")
    'id1--v--00001'
    """
    return line.split(",", 1)[0]


def cached_ids(cache_folder, speakers):
    """The utterance IDs of the speakers' caches, by speaker.

    Arguments
    ---------
    cache_folder : str or path
        Folder of the scan caches.
    speakers : iterable of str
        The speakers.

    Returns
    -------
    dict
        ``{speaker: [utterance IDs in cache order]}``; speakers without
        rows are left out.

    Example
    -------
    >>> folder = str(getfixture("tmp_path"))
    >>> with open(os.path.join(folder, "s.csv"), "w") as out:
    ...     _ = out.write("ID,duration\\ns--v--1,1.0\\ns--v--2,2.0\\n")
    >>> cached_ids(folder, ["s"])
    {'s': ['s--v--1', 's--v--2']}
    """
    ids = {}
    for speaker in speakers:
        found = [
            line_id(line) for line in iter_cache_lines(cache_folder, [speaker])
        ]
        if found:
            ids[speaker] = found
    return ids


def write_manifest_from_cache(path, cache_folder, speakers, keep_ids=None):
    """Streams the speakers' cached rows into a manifest CSV, atomically.

    Arguments
    ---------
    path : str or path
        The manifest to write.
    cache_folder : str or path
        Folder of the scan caches.
    speakers : iterable of str
        Speakers whose rows are written, in this order.
    keep_ids : set of str, optional
        Only rows with these IDs are written (all rows when None).

    Returns
    -------
    int
        The number of rows written.

    Example
    -------
    >>> folder = str(getfixture("tmp_path"))
    >>> with open(os.path.join(folder, "s.csv"), "w") as out:
    ...     _ = out.write("ID,duration\\ns--v--1,1.0\\ns--v--2,2.0\\n")
    >>> manifest = os.path.join(folder, "m.csv")
    >>> write_manifest_from_cache(manifest, folder, ["s"], {"s--v--2"})
    1
    >>> print(open(manifest).read().strip())
    ID,duration,wav,start,stop,spk_id,video
    s--v--2,2.0
    """
    n_rows = 0
    with atomic_open(path, "w", newline="") as out:
        out.write(",".join(CACHE_COLUMNS) + "\n")
        for line in iter_cache_lines(cache_folder, speakers):
            if keep_ids is None or line_id(line) in keep_ids:
                out.write(line)
                n_rows += 1
    return n_rows
