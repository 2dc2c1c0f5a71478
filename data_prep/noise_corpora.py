"""MUSAN and RIRS_NOISES preparation: the augmentation manifests.

Writes the two CSV manifests :class:`unipool_lobes.dataio.augment.
WaveformAugmenter` reads, following the LAP authors' data preparation
(``data/MUSAN/dataprep.py``, ``data/RIRs/dataprep.py``, and the file lists
of ``src/utils/dataset.py``):

* ``musan.csv`` (``ID,duration,wav,start,stop,type``): every wav of
  ``musan/<type>/<source>/`` for the types noise, music and speech, cut
  into 5 s windows with a 3 s hop. Windows start at 0, 3, 6, ... s while
  the start is before ``length - 5 s``, so a file of 5 s or less gives no
  window. ``start`` and ``stop`` are samples into the original file.
  **Deviation from the authors:** they write each window as a file
  (``musan_split/<type>/<source>/<stem>/<start s>.wav``); we only list the
  windows and the augmenter reads each from the original file (a seek in
  a PCM wav), so that MUSAN's 100-odd hours are not copied a second time,
  about 1.7 times over (5 s windows every 3 s). The ID is that path,
  less ``musan_split/`` and ``.wav``: ``noise/free-sound/noise-free-sound-
  0000/00003``.
* ``rirs.csv`` (``ID,duration,wav,kind``): the real RIRs listed in
  ``RIRS_NOISES/real_rirs_isotropic_noises/rir_list`` (the last
  whitespace field of a line is the file's path, relative to the folder
  holding ``RIRS_NOISES``), kind ``real``, and every
  ``RIRS_NOISES/simulated_rirs/*/*/*.wav``, kind ``simulated``; the ID is
  the path under ``RIRS_NOISES`` less ``.wav``. The point-source and
  isotropic noises are not used, as by the authors.

``wav`` holds absolute paths, as the corpus preparations write them.
Files that cannot be used (unreadable, another sample rate, listed but
missing) are reported in ``noise_corpora_problems.txt`` and skipped; a
multi-channel file is kept (the augmenter down-mixes noise and draws one
RIR channel). The preparation is skipped when its outputs exist and were
made with the same options (``prepare_noise_corpora_opts.json``, written
last); each file is written atomically. Nothing is downloaded unless a
URL is given.

Authors
 * unipool-sv developers 2026
"""

import logging
import pathlib

from data_prep.common import (
    ProblemReport,
    mark_prepared,
    scan_audio,
    start_preparation,
    write_csv_atomic,
)

logger = logging.getLogger(__name__)

MUSAN_COLUMNS = ("ID", "duration", "wav", "start", "stop", "type")
RIR_COLUMNS = ("ID", "duration", "wav", "kind")
MUSAN_TYPES = ("noise", "music", "speech")
MUSAN_URL = "https://www.openslr.org/resources/17/musan.tar.gz"
RIRS_URL = "https://www.openslr.org/resources/28/rirs_noises.zip"
REAL_RIR_LIST = "real_rirs_isotropic_noises/rir_list"
PREPARATION = "noise_corpora"


def window_starts(n_samples, window, hop):
    """First samples of the windows of a file, by the authors' rule.

    Windows start at ``0, hop, 2 hop, ...`` while the start is below
    ``n_samples - window``: a file of ``window`` samples or fewer gives
    none, and the last ``window`` samples never start one.

    Arguments
    ---------
    n_samples : int
        The file's length.
    window : int
        Window length (samples).
    hop : int
        Hop between starts (samples).

    Returns
    -------
    list of int
        The starts.

    Example
    -------
    >>> window_starts(5 * 16000, 80000, 48000)
    []
    >>> window_starts(11 * 16000, 80000, 48000)
    [0, 48000]
    """
    if window <= 0 or hop <= 0:
        raise ValueError(f"window {window} and hop {hop} must be positive")
    return list(range(0, int(n_samples) - int(window), int(hop)))


def _window_name(start, sample_rate):
    """The authors' window name: the start in whole seconds, 5 digits
    (samples when the start is not a whole second)."""
    if start % sample_rate == 0:
        return f"{start // sample_rate:05d}"
    return f"{start}smp"


def find_corpus_folder(folder, name, marker):
    """Finds a corpus folder given it or the folder holding it.

    Arguments
    ---------
    folder : str or path
        ``.../musan`` or its parent (likewise ``RIRS_NOISES``).
    name : str
        The corpus folder's name (``musan``, ``RIRS_NOISES``).
    marker : str
        A sub-folder that tells the corpus folder (``noise``,
        ``simulated_rirs``).

    Returns
    -------
    pathlib.Path
        The corpus folder, resolved.

    Raises
    ------
    FileNotFoundError
        When neither ``folder`` nor ``folder/name`` holds ``marker``.

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> (root / "musan" / "noise").mkdir(parents=True)
    >>> find_corpus_folder(root, "musan", "noise").name
    'musan'
    """
    folder = pathlib.Path(folder)
    for candidate in (folder / name, folder):
        if (candidate / marker).is_dir():
            return candidate.resolve()
    raise FileNotFoundError(
        f"{folder}: no {name} corpus found (expected {folder / name / marker}"
        f" or {folder / marker})"
    )


def _download(url, folder, archive_name):
    """Downloads and unpacks a corpus archive into ``folder``."""
    from speechbrain.utils.data_utils import download_file

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    logger.info("Downloading %s into %s", url, folder)
    download_file(
        str(url),
        str(folder / archive_name),
        unpack=True,
        dest_unpack=str(folder),
    )


def _locate(folder, name, marker, url, archive_name):
    """The corpus folder, downloaded first when missing and a URL is given."""
    try:
        return find_corpus_folder(folder, name, marker)
    except FileNotFoundError:
        if not url:
            raise
    _download(url, folder, archive_name)
    return find_corpus_folder(folder, name, marker)


def _usable(infos, sample_rate, problems):
    """``{path: frames}`` of the files at ``sample_rate``; others reported."""
    usable = {}
    for path, info in infos.items():
        if info.sample_rate != sample_rate:
            problems.add(
                path,
                f"sample rate {info.sample_rate} Hz, not {sample_rate} Hz; "
                "skipped",
            )
            continue
        usable[path] = info.frames
    return usable


def musan_rows(musan, sample_rate, window, hop, problems, num_workers=1):
    """Manifest rows of MUSAN's windows.

    Arguments
    ---------
    musan : str or path
        The ``musan`` folder (``noise/``, ``music/``, ``speech/``).
    sample_rate : int
        Required sample rate; other files are reported and skipped.
    window : int
        Window length (samples).
    hop : int
        Hop (samples).
    problems : ProblemReport
        Receives unreadable files, files at another rate, missing types.
    num_workers : int
        Processes reading headers.

    Returns
    -------
    list of dict
        One row per window (columns :data:`MUSAN_COLUMNS`), sorted by path.

    Example
    -------
    >>> import numpy, soundfile
    >>> musan = getfixture("tmp_path") / "musan"
    >>> (musan / "noise" / "src").mkdir(parents=True)
    >>> soundfile.write(musan / "noise/src/a.wav", numpy.zeros(110), 10)
    >>> rows = musan_rows(musan, 10, 50, 30, ProblemReport())
    >>> [(r["ID"], r["start"], r["stop"]) for r in rows]
    [('noise/src/a/00000', 0, 50), ('noise/src/a/00003', 30, 80)]
    """
    musan = pathlib.Path(musan)
    paths = []
    for kind in MUSAN_TYPES:
        if not (musan / kind).is_dir():
            problems.add(musan / kind, "missing; no window of this type")
            continue
        found = sorted((musan / kind).glob("*/*.wav"))
        if not found:
            problems.add(musan / kind, "no <source>/<file>.wav in it")
        paths += found
    infos = scan_audio(sorted(paths), problems, num_workers)
    rows = []
    for path, frames in _usable(infos, sample_rate, problems).items():
        relative = path.relative_to(musan).with_suffix("")
        kind = relative.parts[0]
        for start in window_starts(frames, window, hop):
            rows.append(
                {
                    "ID": f"{relative.as_posix()}/"
                    + _window_name(start, sample_rate),
                    "duration": round(window / sample_rate, 5),
                    "wav": str(path),
                    "start": start,
                    "stop": start + window,
                    "type": kind,
                }
            )
    return rows


def read_rir_list(rirs, problems):
    """Paths of the real RIRs listed in ``rir_list``.

    The last whitespace field of each line is the path, relative to the
    folder holding ``RIRS_NOISES`` (``RIRS_NOISES/real_rirs_isotropic_
    noises/air_...wav``); a path not starting with ``RIRS_NOISES/`` is
    taken relative to the ``RIRS_NOISES`` folder itself.

    Arguments
    ---------
    rirs : str or path
        The ``RIRS_NOISES`` folder.
    problems : ProblemReport
        Receives a missing list, listed files that are missing, and
        repeated entries (``rir_list:line``).

    Returns
    -------
    list of pathlib.Path
        The listed files that exist, in list order, each once.

    Example
    -------
    >>> rirs = getfixture("tmp_path") / "RIRS_NOISES"
    >>> real = rirs / "real_rirs_isotropic_noises"
    >>> real.mkdir(parents=True)
    >>> _ = (real / "a.wav").write_bytes(b"")
    >>> _ = (real / "rir_list").write_text(
    ...     "--rir-id a --room-id r RIRS_NOISES/real_rirs_isotropic_noises"
    ...     "/a.wav\\n"
    ... )
    >>> [p.name for p in read_rir_list(rirs, ProblemReport())]
    ['a.wav']
    """
    rirs = pathlib.Path(rirs)
    listing = rirs / REAL_RIR_LIST
    if not listing.is_file():
        problems.add(listing, "missing; no real RIR used")
        return []
    paths, seen = [], set()
    lines = listing.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{listing}:{number}"
        relative = pathlib.PurePosixPath(fields[-1])
        if relative.parts and relative.parts[0] in (rirs.name, "RIRS_NOISES"):
            path = rirs.joinpath(*relative.parts[1:])
        else:
            path = rirs / relative
        if path in seen:
            problems.add(where, f"{fields[-1]} listed again; skipped")
            continue
        if not path.is_file():
            problems.add(where, f"{path} not found; skipped")
            continue
        seen.add(path)
        paths.append(path)
    return paths


def rir_rows(rirs, sample_rate, problems, num_workers=1):
    """Manifest rows of the RIR pool (real, then simulated).

    Arguments
    ---------
    rirs : str or path
        The ``RIRS_NOISES`` folder.
    sample_rate : int
        Required sample rate; other files are reported and skipped.
    problems : ProblemReport
        Receives the problems found.
    num_workers : int
        Processes reading headers.

    Returns
    -------
    list of dict
        One row per RIR (columns :data:`RIR_COLUMNS`).

    Example
    -------
    >>> import numpy, soundfile
    >>> rirs = getfixture("tmp_path") / "RIRS_NOISES"
    >>> room = rirs / "simulated_rirs" / "smallroom" / "Room001"
    >>> room.mkdir(parents=True)
    >>> soundfile.write(room / "Room001-00001.wav", numpy.ones(80), 16000)
    >>> rows = rir_rows(rirs, 16000, ProblemReport())
    >>> [(r["ID"], r["kind"]) for r in rows]
    [('simulated_rirs/smallroom/Room001/Room001-00001', 'simulated')]
    """
    rirs = pathlib.Path(rirs)
    kinds = dict.fromkeys(read_rir_list(rirs, problems), "real")
    simulated = sorted((rirs / "simulated_rirs").glob("*/*/*.wav"))
    if not simulated:
        problems.add(rirs / "simulated_rirs", "no <size>/<room>/<file>.wav")
    for path in simulated:
        kinds.setdefault(path, "simulated")
    infos = scan_audio(list(kinds), problems, num_workers)
    rows = []
    for path, frames in _usable(infos, sample_rate, problems).items():
        rows.append(
            {
                "ID": path.relative_to(rirs).with_suffix("").as_posix(),
                "duration": round(frames / sample_rate, 5),
                "wav": str(path),
                "kind": kinds[path],
            }
        )
    return rows


def prepare_noise_corpora(
    musan_folder,
    rirs_folder,
    save_folder,
    sample_rate=16000,
    skip_prep=False,
    window_seconds=5.0,
    hop_seconds=3.0,
    musan_url=None,
    rirs_url=None,
    num_workers=None,
):
    """Prepares MUSAN and RIRS_NOISES for waveform augmentation.

    Writes ``<save_folder>/musan.csv`` and ``<save_folder>/rirs.csv`` (see
    the module docstring) and ``noise_corpora_problems.txt``.

    Arguments
    ---------
    musan_folder : str or path
        The ``musan`` folder or the folder holding it.
    rirs_folder : str or path
        The ``RIRS_NOISES`` folder or the folder holding it.
    save_folder : str or path
        Where the manifests are written.
    sample_rate : int
        The rate the augmenter works at; files at another rate are
        reported and skipped (both corpora are 16 kHz).
    skip_prep : bool
        Return the output paths without preparing anything.
    window_seconds : float
        MUSAN window length (the authors: 5 s).
    hop_seconds : float
        MUSAN window hop (the authors: 3 s).
    musan_url : str, optional
        When given and no MUSAN is found, ``musan.tar.gz`` is downloaded
        from it (e.g. :data:`MUSAN_URL`; a local archive path is copied)
        and unpacked into ``musan_folder``.
    rirs_url : str, optional
        Likewise ``rirs_noises.zip`` (e.g. :data:`RIRS_URL`) into
        ``rirs_folder``.
    num_workers : int, optional
        Processes reading headers (default: cores, at most 8).

    Returns
    -------
    dict
        Paths of ``musan``, ``rirs`` and ``problems``.

    Raises
    ------
    FileNotFoundError
        When a corpus folder is not found (and no URL is given).
    ValueError
        When a corpus gives no usable window or RIR at all.

    Example
    -------
    >>> from data_prep.mini_noise import write_mini_musan, write_mini_rirs
    >>> import numpy, soundfile
    >>> root = getfixture("tmp_path")
    >>> soundfile.write(root / "s.wav", numpy.ones(16000) * 0.1, 16000)
    >>> musan = write_mini_musan(root, [root / "s.wav"])
    >>> rirs = write_mini_rirs(root)
    >>> paths = prepare_noise_corpora(root, root, root / "prep", num_workers=1)
    >>> sorted(paths)
    ['musan', 'problems', 'rirs']
    """
    save_folder = pathlib.Path(save_folder).resolve()
    outputs = {
        "musan": save_folder / "musan.csv",
        "rirs": save_folder / "rirs.csv",
        "problems": save_folder / f"{PREPARATION}_problems.txt",
    }
    if skip_prep:
        return outputs
    window = int(round(window_seconds * sample_rate))
    hop = int(round(hop_seconds * sample_rate))
    if window <= 0 or hop <= 0:
        raise ValueError(
            f"window_seconds {window_seconds} and hop_seconds {hop_seconds} "
            "must be positive"
        )
    musan = _locate(musan_folder, "musan", "noise", musan_url, "musan.tar.gz")
    rirs = _locate(
        rirs_folder,
        "RIRS_NOISES",
        "simulated_rirs",
        rirs_url,
        "rirs_noises.zip",
    )
    options = {
        "musan_folder": musan,
        "rirs_folder": rirs,
        "sample_rate": sample_rate,
        "window": window,
        "hop": hop,
    }
    lock = start_preparation(
        save_folder, PREPARATION, options, outputs.values()
    )
    if lock is None:
        logger.info("MUSAN and RIRs already prepared in %s", save_folder)
        return outputs
    with lock:
        save_folder.mkdir(parents=True, exist_ok=True)
        problems = ProblemReport()
        windows = musan_rows(
            musan, sample_rate, window, hop, problems, num_workers
        )
        rir_pool = rir_rows(rirs, sample_rate, problems, num_workers)
        problems.write(outputs["problems"])
        if not windows:
            raise ValueError(
                f"{musan}: no MUSAN file longer than {window_seconds} s at "
                f"{sample_rate} Hz; see {outputs['problems']}"
            )
        if not rir_pool:
            raise ValueError(
                f"{rirs}: no usable RIR at {sample_rate} Hz; see "
                f"{outputs['problems']}"
            )
        write_csv_atomic(outputs["musan"], windows, MUSAN_COLUMNS)
        write_csv_atomic(outputs["rirs"], rir_pool, RIR_COLUMNS)
        counts = dict.fromkeys(MUSAN_TYPES, 0)
        for row in windows:
            counts[row["type"]] += 1
        logger.info(
            "%s: %d noise, %d music, %d speech windows",
            outputs["musan"],
            counts["noise"],
            counts["music"],
            counts["speech"],
        )
        logger.info("%s: %d RIRs", outputs["rirs"], len(rir_pool))
        mark_prepared(save_folder, PREPARATION, options)
    return outputs
