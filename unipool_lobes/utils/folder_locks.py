"""Folder locks: one process at a time writes into an output folder.

:class:`FolderLock` refuses a second process at once, naming the process
that holds the folder, and takes over with a warning a lock left by a
process that died; :func:`lock_folder` and :func:`lock_target` check the
folder is writable first.

Authors
 * unipool-sv developers 2026
"""

import contextlib
import datetime
import fcntl
import json
import logging
import os
import pathlib
import socket
import sys

from unipool_lobes.utils.disk_errors import (
    DiskFullError,
    OutputFolderError,
    disk_full_as_error,
    ensure_writable_folder,
)

__all__ = [
    "LOCK_NAME",
    "FolderBusyError",
    "FolderLock",
    "describe_holder",
    "lock_folder",
    "lock_target",
]

# The logger of the module these locks came from, so that logging
# configurations (and filters) written for it still see the take-over
# warnings.
logger = logging.getLogger("unipool_lobes.utils.safe_io")

LOCK_NAME = ".unipool-sv.lock"


class FolderBusyError(RuntimeError):
    """Another process is writing into the same folder."""


_HELD_LOCKS = {}


class FolderLock:
    """An exclusive, advisory lock on an output folder.

    The lock is an ``flock`` on a small JSON file that names its holder
    (pid, host, start time, command, purpose). A second process asking for
    it is refused at once with :class:`FolderBusyError` naming the holder.
    The kernel drops the lock when its holder dies, however it dies; the
    next process then takes the lock over and logs a warning naming the
    process that did not release it. The same process may take a lock it
    already holds (nested uses share it). The lock file is removed when the
    lock is released.

    Arguments
    ---------
    lock_file : str or os.PathLike
        The lock file (its folder must exist).
    purpose : str
        What the holder does, e.g. ``"training"`` (named in messages).

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> with FolderLock(folder / LOCK_NAME, "training"):
    ...     holder = FolderLock.holder(folder / LOCK_NAME)
    >>> holder["pid"] == os.getpid(), holder["purpose"]
    (True, 'training')
    >>> (folder / LOCK_NAME).exists()
    False
    """

    def __init__(self, lock_file, purpose):
        self.lock_file = pathlib.Path(lock_file)
        self.purpose = purpose
        self._handle = None
        self._nested = False

    @staticmethod
    def holder(lock_file):
        """The holder record written in a lock file, or None if released.

        Arguments
        ---------
        lock_file : str or os.PathLike
            The lock file.

        Returns
        -------
        dict or None
            ``pid``, ``host``, ``started``, ``command``, ``purpose``.
        """
        try:
            text = pathlib.Path(lock_file).read_text(encoding="utf-8")
            record = json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def acquire(self):
        """Takes the lock, or raises at once if another process holds it.

        Returns
        -------
        FolderLock
            Itself.

        Raises
        ------
        FolderBusyError
            When another process holds the lock.
        OutputFolderError
            When the lock file cannot be created (read-only folder).
        """
        if self._handle is not None or self._nested:
            return self  # this object holds it already
        key = os.path.realpath(self.lock_file)
        if key in _HELD_LOCKS:
            self._nested = True
            return self
        handle = self._open_locked()
        previous = self.holder(self.lock_file)
        if previous is not None:
            logger.warning(
                "%s: taking over the lock of %s; that process is no longer "
                "running and did not finish cleanly",
                self.lock_file.parent,
                describe_holder(previous),
            )
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now()
            .astimezone()
            .isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "purpose": self.purpose,
        }
        try:
            with disk_full_as_error(self.lock_file, "the lock file"):
                os.ftruncate(handle, 0)
                os.pwrite(handle, json.dumps(record).encode("utf-8"), 0)
                os.fsync(handle)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(self.lock_file)  # still ours: we hold the flock
            os.close(handle)
            raise
        self._handle = handle
        _HELD_LOCKS[key] = self
        return self

    def _open_locked(self):
        """Opens and flocks the lock file; the descriptor."""
        while True:
            try:
                with disk_full_as_error(self.lock_file, "the lock file"):
                    handle = os.open(
                        self.lock_file, os.O_RDWR | os.O_CREAT, 0o666
                    )
            except DiskFullError:
                raise
            except OSError as error:
                reason = os.strerror(error.errno) if error.errno else str(error)
                raise OutputFolderError(
                    self.lock_file.parent, reason.lower()
                ) from error
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                raise FolderBusyError(self._busy_message()) from None
            # The holder removes the file as it releases the lock: if this
            # descriptor's file is no longer the one at the path, the lock
            # taken is on a removed file; take the current one instead.
            try:
                current = os.stat(self.lock_file).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(handle).st_ino:
                return handle
            os.close(handle)

    def release(self):
        """Removes the lock file and releases the lock."""
        if self._nested or self._handle is None:
            return
        with contextlib.suppress(OSError):
            os.remove(self.lock_file)
        os.close(self._handle)  # closing drops the flock
        self._handle = None
        _HELD_LOCKS.pop(os.path.realpath(self.lock_file), None)

    def _busy_message(self):
        holder = self.holder(self.lock_file)
        who = describe_holder(holder) if holder else "another process"
        return (
            f"{self.lock_file.parent} is in use by {who}; {self.purpose} "
            "refused. Wait for that process to finish, stop it, or choose "
            "another output folder."
        )

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


def describe_holder(record):
    """One line naming the process of a lock record.

    Arguments
    ---------
    record : dict
        A lock record (see :meth:`FolderLock.holder`).

    Returns
    -------
    str
        E.g. ``training (pid 12, host gpu1, started 2026-01-01T10:00:00)``.

    Example
    -------
    >>> record = {
    ...     "pid": 12,
    ...     "host": "gpu1",
    ...     "purpose": "training",
    ...     "started": "2026-01-01T10:00:00+00:00",
    ...     "command": "train.py x.yaml",
    ... }
    >>> describe_holder(record)  # doctest: +ELLIPSIS
    'training (pid 12 on host gpu1, started 2026-01-01T10:00:00+00:00: tra...'
    """
    return (
        f"{record.get('purpose', 'a process')} (pid {record.get('pid', '?')} "
        f"on host {record.get('host', '?')}, started "
        f"{record.get('started', '?')}: {record.get('command', '?')})"
    )


def lock_folder(folder, purpose):
    """Checks that ``folder`` is writable, then locks it for ``purpose``.

    Arguments
    ---------
    folder : str or os.PathLike
        The output folder (created if needed).
    purpose : str
        What the caller does (named in messages).

    Returns
    -------
    FolderLock
        The acquired lock (a context manager; release it when done).

    Raises
    ------
    OutputFolderError
        When the folder cannot be written.
    FolderBusyError
        When another process holds it.

    Example
    -------
    >>> folder = getfixture("tmp_path") / "run"
    >>> with lock_folder(folder, "training"):
    ...     (folder / LOCK_NAME).is_file()
    True
    """
    folder = ensure_writable_folder(folder)
    return FolderLock(folder / LOCK_NAME, purpose).acquire()


def lock_target(target, purpose):
    """Locks a file or folder that is replaced as a whole (export, embed).

    The lock file sits beside the target (``.<name>.unipool-sv.lock``), so
    the target itself can be renamed into place.

    Arguments
    ---------
    target : str or os.PathLike
        The output that will be written.
    purpose : str
        What the caller does (named in messages).

    Returns
    -------
    FolderLock
        The acquired lock.

    Raises
    ------
    OutputFolderError
        When the target's folder cannot be written.
    FolderBusyError
        When another process writes the same target.

    Example
    -------
    >>> target = getfixture("tmp_path") / "model"
    >>> with lock_target(target, "export"):
    ...     sorted(p.name for p in target.parent.iterdir())
    ['.model.unipool-sv.lock']
    >>> list(target.parent.iterdir())
    []
    """
    target = pathlib.Path(target).absolute()
    ensure_writable_folder(target.parent)
    lock_file = target.parent / f".{target.name}{LOCK_NAME}"
    return FolderLock(lock_file, purpose).acquire()
