"""Noise and RIR pools of the waveform augmentation, read from manifests.

A MUSAN window manifest (``ID,duration,wav,start,stop,type``) gives one
pool per type (:func:`load_noise_pools`), a RIRS_NOISES manifest
(``ID,duration,wav,kind``) one pool of whole files (:func:`load_rir_pool`),
as :func:`data_prep.noise_corpora.prepare_noise_corpora` writes them. A
pool holds paths and sample bounds only; samples are read at each draw.

Authors
 * unipool-sv developers 2026
"""

import os

from unipool_lobes.dataio.audio_reading import read_segment
from unipool_lobes.dataio.manifest import read_manifest

__all__ = ["MUSAN_TYPES", "load_noise_pools", "load_rir_pool"]

MUSAN_TYPES = ("noise", "music", "speech")


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
        """Appends an item (its path stored once when repeated in a row).

        Arguments
        ---------
        path : str
            The audio file.
        start : int
            First sample of the item in the file.
        stop : int or None
            Sample after its last (None: to the end of the file).
        item_id : str
            The manifest ID (for messages).
        line : int
            The manifest line (for messages).
        """
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
            audio, rate = read_segment(path, start + offset, n_frames)
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
