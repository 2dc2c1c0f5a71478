"""Shared parts of every corpus preparation.

Atomic file writing (a reader never sees a half-written manifest), the
skip-if-done record of the options a preparation ran with, header-only audio
scanning, conversion to 16 kHz mono wav written once and reused, a seeded
gender-balanced speaker split and the collector of problems found on the way.

Authors
 * unipool-sv developers 2026
"""

import contextlib
import csv
import io
import json
import logging
import math
import multiprocessing
import os
import pathlib
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import soundfile

from data_prep.audio_header import (
    AudioInfo as AudioInfo,
    audio_info,
    check_last_sample,
)

# The CSV reader is the package's: one implementation, re-exported here.
from unipool_lobes.dataio.manifest import read_csv as read_csv
from unipool_lobes.utils.safe_io import (
    atomic_open as atomic_open,
    lock_folder,
    write_bytes_atomic,
    write_text_atomic as write_text_atomic,
)

logger = logging.getLogger(__name__)

# Below this many files a process pool costs more than it saves.
PARALLEL_MIN_FILES = 64


class ProblemReport:
    """Collects the problems a preparation meets and writes them to a file.

    Each problem names where it was found (a file, ``file:line``, a speaker)
    and what is wrong; the preparation goes on with the good data.

    Example
    -------
    >>> report = ProblemReport()
    >>> report.add("speaker-info.txt:7", "age 'x' is not a number")
    >>> len(report)
    1
    >>> print(report.lines()[0])
    speaker-info.txt:7: age 'x' is not a number
    """

    def __init__(self):
        self.problems = []

    def add(self, where, message):
        """Records one problem.

        Arguments
        ---------
        where : str or path
            The file, ``file:line`` or item the problem is about.
        message : str
            What is wrong and what was done about it.
        """
        self.problems.append((str(where), str(message)))

    def __len__(self):
        return len(self.problems)

    def lines(self):
        """Returns the problems as ``where: message`` lines.

        Returns
        -------
        list of str
            One line per problem, in the order they were found.
        """
        return [f"{where}: {message}" for where, message in self.problems]

    def write(self, path):
        """Writes the report (one problem a line; empty if none) atomically.

        Arguments
        ---------
        path : str or path
            The report file.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        text = "".join(line + "\n" for line in self.lines())
        write_text_atomic(path, text)
        if self.problems:
            logger.warning(
                "%d problem(s) during preparation, listed in %s",
                len(self.problems),
                path,
            )
        return pathlib.Path(path)


def write_csv_atomic(path, rows, fieldnames):
    """Writes a list of dicts as CSV atomically (temp file + ``os.replace``).

    Arguments
    ---------
    path : str or path
        The CSV file to write.
    rows : iterable of dict
        One dict a row; each holds every key of ``fieldnames``.
    fieldnames : list of str
        The columns, in order.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        When a row lacks a column or has one not in ``fieldnames``.

    Example
    -------
    >>> path = getfixture("tmp_path") / "m.csv"
    >>> rows = [{"ID": "a", "spk_id": "s1"}]
    >>> _ = write_csv_atomic(path, rows, ["ID", "spk_id"])
    >>> print(path.read_text().strip())
    ID,spk_id
    a,s1
    """
    fieldnames = list(fieldnames)
    with atomic_open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=fieldnames)
        writer.writeheader()
        for number, row in enumerate(rows):
            if set(row) != set(fieldnames):
                raise ValueError(
                    f"{path}: row {number} has columns {sorted(row)}, "
                    f"expected {fieldnames}"
                )
            writer.writerow(row)
    return pathlib.Path(path)


# ---------------------------------------------------------------- skip-if-done
def options_path(save_folder, name):
    """Returns the path of the options record of preparation ``name``.

    Arguments
    ---------
    save_folder : str or path
        Where the preparation writes its outputs.
    name : str
        The preparation's name (e.g. ``"vctk"``).

    Returns
    -------
    pathlib.Path
        ``<save_folder>/prepare_<name>_opts.json``.

    Example
    -------
    >>> options_path("/data/out", "vctk").name
    'prepare_vctk_opts.json'
    """
    return pathlib.Path(save_folder) / f"prepare_{name}_opts.json"


def _normalised(options):
    """Options as JSON would give them back (tuples -> lists, paths -> str)."""
    return json.loads(json.dumps(options, sort_keys=True, default=str))


def is_prepared(save_folder, name, options, outputs):
    """Tells whether a preparation already ran with these very options.

    True only when the options record exists, holds the same options, and
    every output file exists. The record is written last (see
    :func:`mark_prepared`), so outputs of an interrupted run never count.

    Arguments
    ---------
    save_folder : str or path
        Where the preparation writes its outputs.
    name : str
        The preparation's name.
    options : dict
        JSON-serialisable options (paths and tuples are fine).
    outputs : iterable of str or path
        The files the preparation writes.

    Returns
    -------
    bool
        Whether the preparation can be skipped.

    Example
    -------
    >>> folder = str(getfixture("tmp_path"))
    >>> is_prepared(folder, "demo", {"seed": 1}, [])
    False
    >>> mark_prepared(folder, "demo", {"seed": 1})
    >>> is_prepared(folder, "demo", {"seed": 1}, [])
    True
    >>> is_prepared(folder, "demo", {"seed": 2}, [])
    False
    """
    record = options_path(save_folder, name)
    if not record.is_file():
        return False
    try:
        saved = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if saved != _normalised(options):
        return False
    return all(pathlib.Path(path).is_file() for path in outputs)


def mark_prepared(save_folder, name, options):
    """Writes the options record; call it after every output is written.

    Arguments
    ---------
    save_folder : str or path
        Where the preparation writes its outputs.
    name : str
        The preparation's name.
    options : dict
        The options the outputs were made with.

    Example
    -------
    >>> folder = str(getfixture("tmp_path"))
    >>> mark_prepared(folder, "demo", {"splits": ("train",)})
    >>> options_path(folder, "demo").read_text()
    '{\\n  "splits": [\\n    "train"\\n  ]\\n}\\n'
    """
    text = json.dumps(_normalised(options), indent=2, sort_keys=True)
    write_text_atomic(options_path(save_folder, name), text + "\n")


def clear_prepared(save_folder, name):
    """Removes the options record before outputs are rewritten.

    Arguments
    ---------
    save_folder : str or path
        Where the preparation writes its outputs.
    name : str
        The preparation's name.

    Example
    -------
    >>> folder = str(getfixture("tmp_path"))
    >>> mark_prepared(folder, "demo", {})
    >>> clear_prepared(folder, "demo")
    >>> options_path(folder, "demo").exists()
    False
    """
    with contextlib.suppress(FileNotFoundError):
        options_path(save_folder, name).unlink()


def start_preparation(save_folder, name, options, outputs):
    """Locks ``save_folder`` for a preparation, unless it is already done.

    A finished preparation (same options, every output there) is reused
    without taking the lock, so a prepared corpus on a read-only disk can
    be trained on. Otherwise the folder must be writable and free: a
    second preparation of the same folder is refused at once, naming the
    process doing the first (:class:`unipool_lobes.utils.safe_io.FolderLock`).
    The check is made again under the lock, in case another process
    finished meanwhile, and the options record is removed before outputs
    are rewritten.

    Arguments
    ---------
    save_folder : str or path
        Where the preparation writes its outputs.
    name : str
        The preparation's name.
    options : dict
        Its options (see :func:`is_prepared`).
    outputs : iterable of str or path
        The files it writes.

    Returns
    -------
    FolderLock or None
        The held lock (use it as a context manager around the work), or
        None when the preparation can be skipped.

    Raises
    ------
    unipool_lobes.utils.safe_io.OutputFolderError
        When ``save_folder`` cannot be written.
    unipool_lobes.utils.safe_io.FolderBusyError
        When another process prepares the same folder.

    Example
    -------
    >>> folder = getfixture("tmp_path") / "prep"
    >>> with start_preparation(folder, "demo", {"seed": 1}, []) as lock:
    ...     mark_prepared(folder, "demo", {"seed": 1})
    >>> start_preparation(folder, "demo", {"seed": 1}, []) is None
    True
    """
    outputs = list(outputs)
    if is_prepared(save_folder, name, options, outputs):
        return None
    lock = lock_folder(save_folder, f"{name} preparation")
    if is_prepared(save_folder, name, options, outputs):
        lock.release()
        return None
    clear_prepared(save_folder, name)
    return lock


# ---------------------------------------------------------------------- audio
def _info_job(path):
    """Worker: ``(path, AudioInfo or None, error or None)``."""
    try:
        info = audio_info(path)
        check_last_sample(path, info.frames)
        return path, info, None
    except ValueError as error:
        return path, None, str(error)


def _without_path(message, path):
    """An error message less its leading ``<path>: `` (the report line
    names the file already)."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def scan_audio(paths, problems=None, num_workers=1):
    """Reads the headers of many audio files, collecting the unreadable ones.

    Besides its header, the last sample of each file is decoded, so that a
    truncated FLAC file is caught here rather than in training (see
    :func:`data_prep.audio_header.check_last_sample`).

    Arguments
    ---------
    paths : iterable of str or path
        The audio files.
    problems : ProblemReport, optional
        Receives one line per unreadable or truncated file; without it,
        the first such file raises.
    num_workers : int
        Processes to use when there are many files.

    Returns
    -------
    dict
        ``{path: AudioInfo}`` for the readable files, in input order.

    Raises
    ------
    ValueError
        On an unreadable file when no ``problems`` collector is given.

    Example
    -------
    >>> import numpy
    >>> folder = getfixture("tmp_path")
    >>> soundfile.write(folder / "a.wav", numpy.zeros(160), 16000)
    >>> _ = (folder / "bad.wav").write_bytes(b"not audio")
    >>> report = ProblemReport()
    >>> infos = scan_audio([folder / "a.wav", folder / "bad.wav"], report)
    >>> [p.name for p in infos], len(report)
    (['a.wav'], 1)
    """
    results = _run_jobs(_info_job, list(paths), num_workers)
    infos = {}
    for path, info, error in results:
        if error is not None:
            if problems is None:
                raise ValueError(error)
            problems.add(path, _without_path(error, path))
        else:
            infos[path] = info
    return infos


def resampled_length(frames, orig_rate, new_rate):
    """Number of samples ``torchaudio.functional.resample`` returns.

    Arguments
    ---------
    frames : int
        Input length in samples.
    orig_rate : int
        Input sample rate.
    new_rate : int
        Output sample rate.

    Returns
    -------
    int
        ``ceil(frames * new_rate / orig_rate)``.

    Example
    -------
    >>> resampled_length(48001, 48000, 16000)
    16001
    """
    if orig_rate == new_rate:
        return int(frames)
    return math.ceil(frames * new_rate / orig_rate)


def short_audio_problem(frames, sample_rate, min_duration):
    """Why a file is too short to use, or None when it is long enough.

    Files shorter than a crop are fine (training pads them), but a file
    of a few milliseconds gives an SSL model no frame at all (wav2vec2
    needs 400 samples) and holds no speaker information.

    Arguments
    ---------
    frames : int
        The file's length in samples at ``sample_rate``.
    sample_rate : int
        Its sample rate.
    min_duration : float
        Shortest usable file, in seconds.

    Returns
    -------
    str or None
        The problem line's message (ending with "skipped"), or None.

    Example
    -------
    >>> print(short_audio_problem(800, 16000, 0.1))
    only 0.05 s long (800 samples), under min_duration=0.1 s; skipped
    >>> short_audio_problem(1600, 16000, 0.1) is None
    True
    """
    if frames >= math.ceil(min_duration * sample_rate - 1e-6):
        return None
    return (
        f"only {round(frames / sample_rate, 5)} s long ({frames} samples), "
        f"under min_duration={min_duration} s; skipped"
    )


def _is_converted(target, frames, sample_rate):
    """Whether ``target`` is a mono file of the right rate and length."""
    try:
        info = soundfile.info(str(target))
    except Exception:
        return False
    return (
        info.samplerate == sample_rate
        and info.channels == 1
        and info.frames == frames
    )


def convert_audio(source, target, sample_rate=16000):
    """Writes ``source`` as a mono 16-bit wav at ``sample_rate``, once.

    Channels are averaged and the signal is resampled with
    ``torchaudio.functional.resample``; reading and writing use soundfile.
    A ``target`` that already has the right rate, one channel and the
    expected length is kept as it is (re-runs reuse it). The file is written
    to a temporary name and moved in place, so a crash never leaves a
    truncated ``target``.

    Arguments
    ---------
    source : str or path
        The input audio (wav, flac, ...).
    target : str or path
        The wav file to write (folders are created).
    sample_rate : int
        The output sample rate.

    Returns
    -------
    int
        The number of samples of ``target``.

    Raises
    ------
    ValueError
        When ``source`` is unreadable, shorter than its header says, or
        holds non-finite samples.

    Example
    -------
    >>> import numpy
    >>> folder = getfixture("tmp_path")
    >>> stereo = numpy.zeros((4800, 2), dtype="float32")
    >>> soundfile.write(folder / "in.flac", stereo, 48000)
    >>> convert_audio(folder / "in.flac", folder / "out" / "in.wav")
    1600
    >>> audio_info(folder / "out" / "in.wav")
    AudioInfo(frames=1600, sample_rate=16000, channels=1)
    """
    import torch
    import torchaudio.functional

    info = audio_info(source)
    frames = resampled_length(info.frames, info.sample_rate, sample_rate)
    if _is_converted(target, frames, sample_rate):
        return frames
    check_last_sample(source, info.frames)
    try:
        signal, rate = soundfile.read(
            str(source), dtype="float32", always_2d=True
        )
    except Exception as error:
        raise ValueError(f"{source}: unreadable audio ({error})") from error
    if len(signal) != info.frames:
        raise ValueError(
            f"{source}: corrupt audio, header says {info.frames} samples "
            f"but {len(signal)} could be read"
        )
    if not np.isfinite(signal).all():
        raise ValueError(f"{source}: corrupt audio, holds NaN or inf samples")
    mono = torch.from_numpy(signal.mean(axis=1))
    if rate != sample_rate:
        mono = torchaudio.functional.resample(mono, rate, sample_rate)
    pcm = np.clip(np.round(mono.numpy() * 32768.0), -32768, 32767)
    # Encoded in memory: libsndfile writing into a file object reports a
    # full disk as a bare AssertionError; a plain write raises ENOSPC, which
    # write_bytes_atomic turns into an error naming the file.
    encoded = io.BytesIO()
    soundfile.write(encoded, pcm.astype(np.int16), sample_rate, format="WAV")
    write_bytes_atomic(target, encoded.getvalue())
    return len(pcm)


def _convert_job(job):
    """Worker: ``(source, target, frames or None, error or None)``."""
    source, target, sample_rate = job
    try:
        return source, target, convert_audio(source, target, sample_rate), None
    except ValueError as error:
        return source, target, None, str(error)


_LIBC = []


def _libc():
    """The C library, loaded once (before any fork: loading it in a child
    forked from a threaded process could deadlock)."""
    if not _LIBC:
        import ctypes

        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def die_with_parent(parent_pid=None):
    """Makes the calling process end when its parent process ends.

    Without it, the workers of a preparation killed with SIGKILL go on
    converting files, then sleep, each holding its memory. On Linux the
    kernel sends SIGKILL to the caller when the parent thread that made it
    exits (``PR_SET_PDEATHSIG``); elsewhere this does nothing.

    Arguments
    ---------
    parent_pid : int, optional
        The parent's pid as the parent saw it: when the parent already died
        before this call, the caller exits at once.

    Example
    -------
    >>> die_with_parent()  # in the test process: parent alive, nothing happens
    """
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    _libc().prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def child_dies_with_parent():
    """A ``preexec_fn`` for ``subprocess`` that ends the child with us.

    Returns
    -------
    callable
        Calls :func:`die_with_parent` in the child.

    Example
    -------
    >>> import subprocess
    >>> subprocess.run(["true"], preexec_fn=child_dies_with_parent()).returncode
    0
    """
    if sys.platform.startswith("linux"):
        _libc()
    parent_pid = os.getpid()

    def _in_child():
        die_with_parent(parent_pid)

    return _in_child


def _worker_init(parent_pid=None):
    """Keeps each worker process on one thread, and ends it with its
    parent."""
    import torch

    die_with_parent(parent_pid)
    torch.set_num_threads(1)


@contextlib.contextmanager
def _one_torch_thread():
    """Runs torch on one thread meanwhile: resampling one file is too small
    a job to share, and threads fight over the cores otherwise."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _run_jobs(function, jobs, num_workers):
    """Maps ``function`` over ``jobs``, in a process pool when worth it."""
    if num_workers is None:
        num_workers = default_num_workers()
    if num_workers <= 1 or len(jobs) < PARALLEL_MIN_FILES:
        return [function(job) for job in jobs]
    # Fork, as torch's DataLoader does on Linux: spawn and forkserver would
    # re-import the caller's __main__ in every worker. Workers use a single
    # torch thread (see _worker_init), which keeps forking after torch safe.
    method = "fork" if sys.platform.startswith("linux") else None
    chunksize = max(1, len(jobs) // (num_workers * 8))
    with ProcessPoolExecutor(
        max_workers=num_workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_worker_init,
        initargs=(os.getpid(),),
    ) as pool:
        return list(pool.map(function, jobs, chunksize=chunksize))


def default_num_workers():
    """Processes used for audio conversion by default: cores, at most 8.

    Returns
    -------
    int
        The number of worker processes.

    Example
    -------
    >>> 1 <= default_num_workers() <= 8
    True
    """
    return max(1, min(8, os.cpu_count() or 1))


def convert_audio_files(jobs, sample_rate=16000, problems=None, num_workers=1):
    """Converts many files with :func:`convert_audio`, reusing done ones.

    Arguments
    ---------
    jobs : iterable of (source, target)
        Input file and the wav file to write for it.
    sample_rate : int
        The output sample rate.
    problems : ProblemReport, optional
        Receives one line per unreadable or corrupt input; without it the
        first such file raises.
    num_workers : int or None
        Worker processes (a pool is used from 64 files on); ``None`` uses
        :func:`default_num_workers`.

    Returns
    -------
    dict
        ``{target: number of samples}`` for the files converted or reused.

    Raises
    ------
    ValueError
        On a bad input when no ``problems`` collector is given.

    Example
    -------
    >>> import numpy
    >>> folder = getfixture("tmp_path")
    >>> soundfile.write(folder / "a.wav", numpy.zeros(4800), 48000)
    >>> done = convert_audio_files([(folder / "a.wav", folder / "a16.wav")])
    >>> list(done.values())
    [1600]
    """
    jobs = [(source, target, sample_rate) for source, target in jobs]
    with _one_torch_thread():
        results = _run_jobs(_convert_job, jobs, num_workers)
    frames_by_target = {}
    for source, target, frames, error in results:
        if error is not None:
            if problems is None:
                raise ValueError(error)
            problems.add(
                source, _without_path(error, source) + "; file skipped"
            )
        else:
            frames_by_target[target] = frames
    return frames_by_target


# -------------------------------------------------------------- speaker split
def scaled_heldout_counts(n_speakers, n_valid, n_test, min_count=2):
    """Valid/test speaker counts for a corpus of ``n_speakers`` speakers.

    The requested counts are used when they leave at least two thirds of
    the speakers for training. Otherwise both are scaled down by the same
    factor so that together they take a third of the speakers (rounded
    down), each keeping at least ``min_count`` speakers (two speakers make
    the smallest list with negative trials).

    Arguments
    ---------
    n_speakers : int
        Speakers available.
    n_valid : int
        Requested validation speakers.
    n_test : int
        Requested test speakers.
    min_count : int
        Smallest valid or test speaker count.

    Returns
    -------
    tuple of int
        ``(n_valid, n_test)`` to use.

    Raises
    ------
    ValueError
        When the corpus cannot give ``min_count`` valid and test speakers
        and keep at least as many for training.

    Example
    -------
    >>> scaled_heldout_counts(108, 18, 18)
    (18, 18)
    >>> scaled_heldout_counts(24, 18, 18)
    (4, 4)
    """
    if n_speakers < 3 * min_count:
        raise ValueError(
            f"{n_speakers} speakers cannot be split into train, valid and "
            f"test with at least {min_count} speakers each"
        )
    budget = n_speakers // 3
    if n_valid + n_test <= budget:
        return n_valid, n_test
    scale = budget / (n_valid + n_test)
    valid = max(min_count, math.floor(n_valid * scale))
    test = max(min_count, math.floor(n_test * scale))
    return valid, test


def _proportional(total, sizes):
    """Splits ``total`` over groups in proportion to ``sizes`` (largest
    remainder), never giving a group more than its size."""
    sizes = np.asarray(sizes, dtype=float)
    exact = total * sizes / sizes.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    for index in order[: total - counts.sum()]:
        counts[index] += 1
    return np.minimum(counts, sizes.astype(int))


def split_speakers(speaker_groups, n_valid, n_test, seed=1234):
    """Seeded speaker split with each group (e.g. gender) kept in proportion.

    Speakers are shuffled within each group with ``seed``; valid and test
    take from each group a share proportional to the group's size (largest
    remainder rounding), the rest is train. The same speakers and seed
    always give the same split, whatever their input order.

    Arguments
    ---------
    speaker_groups : dict
        ``{speaker_id: group}``, e.g. the gender of each speaker.
    n_valid : int
        Validation speakers.
    n_test : int
        Test speakers.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    dict
        ``{"train": [...], "valid": [...], "test": [...]}``, sorted IDs.

    Raises
    ------
    ValueError
        When the counts leave no training speaker.

    Example
    -------
    >>> groups = {f"s{i}": "F" if i % 2 else "M" for i in range(12)}
    >>> split = split_speakers(groups, 2, 2, seed=0)
    >>> [len(split[name]) for name in ("train", "valid", "test")]
    [8, 2, 2]
    >>> sorted(groups[s] for s in split["valid"])
    ['F', 'M']
    """
    if n_valid + n_test >= len(speaker_groups):
        raise ValueError(
            f"{n_valid} valid + {n_test} test speakers leave no training "
            f"speaker out of {len(speaker_groups)}"
        )
    rng = np.random.default_rng(seed)
    members = {}
    for speaker in sorted(speaker_groups):
        members.setdefault(str(speaker_groups[speaker]), []).append(speaker)
    names = sorted(members)
    for name in names:
        rng.shuffle(members[name])
    split = {"train": [], "valid": [], "test": []}
    for part, count in (("valid", n_valid), ("test", n_test)):
        sizes = [len(members[name]) for name in names]
        for name, take in zip(names, _proportional(count, sizes), strict=True):
            split[part] += members[name][:take]
            members[name] = members[name][take:]
    for name in names:
        split["train"] += members[name]
    return {part: sorted(speakers) for part, speakers in split.items()}


# ------------------------------------------------------ the published lists
def is_url(source):
    """Tells whether ``source`` is an http(s) address rather than a path.

    Arguments
    ---------
    source : str or path
        A folder or a base URL.

    Returns
    -------
    bool
        True for ``http://`` and ``https://`` addresses.

    Example
    -------
    >>> is_url("https://example.org/lists"), is_url("/data/lists")
    (True, False)
    """
    return str(source).startswith(("http://", "https://"))


def paper_lists_option(source):
    """The published lists' source as an options record holds it.

    Arguments
    ---------
    source : str or path
        A folder (recorded as its absolute path) or a base URL (as is).

    Returns
    -------
    str
        The value to record.

    Example
    -------
    >>> paper_lists_option("https://example.org/lists")
    'https://example.org/lists'
    >>> pathlib.Path(paper_lists_option("lists")).is_absolute()
    True
    """
    if is_url(source):
        return str(source)
    return str(pathlib.Path(source).resolve())


def paper_lists_folder(source, save_folder, names):
    """Local folder of published lists, downloading them from a URL.

    Arguments
    ---------
    source : str or path
        A folder holding the lists, or a base URL that ``names`` are
        relative to.
    save_folder : str or path
        Downloads go to ``<save_folder>/paper_lists/<name>``.
    names : iterable of str
        Relative paths of the files needed (e.g.
        ``speakers/speaker-train.csv``); used only with a URL.

    Returns
    -------
    pathlib.Path
        The folder holding the lists.

    Raises
    ------
    ValueError
        When ``source`` is neither an existing folder nor a URL.

    Example
    -------
    >>> folder = str(getfixture("tmp_path"))
    >>> paper_lists_folder(folder, folder, []) == pathlib.Path(folder)
    True
    """
    if not is_url(source):
        folder = pathlib.Path(source)
        if not folder.is_dir():
            raise ValueError(
                f"paper_lists {str(source)!r} is neither a folder nor a URL"
            )
        return folder
    from speechbrain.utils.data_utils import download_file

    folder = pathlib.Path(save_folder) / "paper_lists"
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        download_file(f"{str(source).rstrip('/')}/{name}", folder / name)
    return folder


def trials_with_audio(
    trials, available, where, allow_missing=False, problems=None
):
    """Keeps the published trials whose two utterances are in the corpus.

    Arguments
    ---------
    trials : list of dict
        Trials as :func:`data_prep.trials.read_paper_trials` gives them
        (with ``enrol_path`` and ``test_path``, which are removed).
    available : set of str
        Utterance IDs found in the corpus.
    where : str or path
        The trial list, named in messages.
    allow_missing : bool
        Drop (and report) trials naming absent utterances instead of
        raising.
    problems : ProblemReport, optional
        Receives the report of dropped trials.

    Returns
    -------
    list of dict
        The trials kept, in their order.

    Raises
    ------
    ValueError
        When a trial names an absent utterance and ``allow_missing`` is
        False; the message names the list and a few of the files.

    Example
    -------
    >>> trials = [
    ...     {
    ...         "enrol": "a",
    ...         "test": "b",
    ...         "label": 0,
    ...         "enrol_path": "x/a.wav",
    ...         "test_path": "x/b.wav",
    ...     },
    ...     {
    ...         "enrol": "a",
    ...         "test": "c",
    ...         "label": 0,
    ...         "enrol_path": "x/a.wav",
    ...         "test_path": "x/c.wav",
    ...     },
    ... ]
    >>> report = ProblemReport()
    >>> trials_with_audio(trials, {"a", "b"}, "t.csv", True, report)
    [{'enrol': 'a', 'test': 'b', 'label': 0}]
    >>> print(report.lines()[0][:45])
    t.csv: 1 trial(s) name 1 utterance(s) missing
    """
    kept, missing, n_dropped = [], set(), 0
    for trial in trials:
        trial = dict(trial)
        paths = {
            trial["enrol"]: trial.pop("enrol_path", trial["enrol"]),
            trial["test"]: trial.pop("test_path", trial["test"]),
        }
        absent = set(paths) - set(available)
        if absent:
            missing |= {paths[utterance] for utterance in absent}
            n_dropped += 1
        else:
            kept.append(trial)
    if missing:
        first = ", ".join(sorted(missing)[:5])
        message = (
            f"{n_dropped} trial(s) name {len(missing)} utterance(s) "
            f"missing from the corpus, e.g. {first}"
        )
        if not allow_missing:
            raise ValueError(
                f"{where}: {message}. Check data_folder, or set "
                "allow_missing_trials=True to drop these trials."
            )
        if problems is not None:
            problems.add(where, message + "; those trials dropped")
    return kept
