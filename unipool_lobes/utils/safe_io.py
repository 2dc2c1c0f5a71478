"""Safe file output: atomic writes, clear disk-full errors, run locks.

Every command that writes into a folder (training, preparation, export,
embedding, scoring) goes through these helpers, so that:

* a file is never seen half-written: it is written under a temporary name
  beside its target, flushed to disk, then renamed over it;
* files and folders get the permissions the umask asks for (Python's
  temporary-file helpers create them 0600 / 0700 whatever the umask, which
  made prepared corpora and exported models unreadable to other users);
* a full disk stops the work with :class:`DiskFullError`, which names the
  file being written and says the disk is full, and the temporary file is
  removed so that earlier outputs stay intact;
* an output folder that cannot be written (read-only file system,
  permissions) is refused before any work starts
  (:class:`OutputFolderError`);
* one process at a time writes into a folder: :class:`FolderLock` refuses a
  second one at once, naming the process that holds the folder, and takes
  over with a warning a lock left by a process that died.

Authors
 * unipool-sv developers 2026
"""

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import pathlib
import shutil
import socket
import sys
import tempfile

logger = logging.getLogger(__name__)

LOCK_NAME = ".unipool-sv.lock"
# A write that fails while less than this is free is taken for a full disk
# even when the writer (e.g. torch's C++ zip writer) lost the errno.
NEARLY_FULL_BYTES = 1 << 20
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
NOT_WRITABLE_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)


class DiskFullError(OSError):
    """No space was left on the device while writing a file.

    Arguments
    ---------
    path : str or os.PathLike
        The file (or folder) being written.
    detail : str, optional
        What was being written, e.g. ``"checkpoint"``.

    Example
    -------
    >>> print(DiskFullError("/data/out/train.csv"))  # doctest: +ELLIPSIS
    no space left on the device while writing /data/out/train.csv: the disk
    is full. Free some space and run the same command again; ...
    """

    def __init__(self, path, detail=None):
        what = f"{detail} " if detail else ""
        message = (
            f"no space left on the device while writing {what}{path}: the "
            "disk is full. Free some space and run the same command again; "
            "the files written before are intact."
        )
        super().__init__(errno.ENOSPC, message)
        self.path = os.fspath(path)
        self.detail = detail

    def __str__(self):
        return self.strerror

    def __reduce__(self):
        return type(self), (self.path, self.detail)


class OutputFolderError(OSError):
    """An output folder that cannot be created or written.

    Arguments
    ---------
    folder : str or os.PathLike
        The folder.
    reason : str
        Why it cannot be used.

    Example
    -------
    >>> print(OutputFolderError("/ro/run", "read-only file system"))
    cannot write into the output folder /ro/run (read-only file system);
    choose a writable folder
    """

    def __init__(self, folder, reason):
        message = (
            f"cannot write into the output folder {folder} ({reason}); "
            "choose a writable folder"
        )
        super().__init__(errno.EROFS, message)
        self.folder = os.fspath(folder)
        self.reason = reason

    def __str__(self):
        return self.strerror

    def __reduce__(self):
        return type(self), (self.folder, self.reason)


class FolderBusyError(RuntimeError):
    """Another process is writing into the same folder."""


# --------------------------------------------------------------- permissions
def current_umask():
    """The process's umask, read without changing it.

    Returns
    -------
    int
        The umask (e.g. ``0o022``).

    Example
    -------
    >>> 0 <= current_umask() <= 0o777
    True
    """
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    # Elsewhere the only way is to set it and put it back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path, directory=False):
    """Gives ``path`` the mode a plain ``open``/``mkdir`` would have given.

    Arguments
    ---------
    path : str or os.PathLike
        A file or folder made by ``tempfile`` (0600 / 0700).
    directory : bool
        Whether ``path`` is a folder.

    Example
    -------
    >>> path = getfixture("tmp_path") / "f"
    >>> _ = path.write_text("x")
    >>> os.chmod(path, 0o600)
    >>> honour_umask(path)
    >>> oct(path.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())
    True
    """
    base = 0o777 if directory else 0o666
    os.chmod(path, base & ~current_umask())


def make_temporary_folder(parent, prefix):
    """``tempfile.mkdtemp`` whose folder honours the umask.

    Arguments
    ---------
    parent : str or os.PathLike
        Where to create it.
    prefix : str
        Start of its name.

    Returns
    -------
    pathlib.Path
        The new, empty folder.

    Example
    -------
    >>> folder = make_temporary_folder(getfixture("tmp_path"), ".x-")
    >>> folder.is_dir(), folder.name.startswith(".x-")
    (True, True)
    """
    folder = pathlib.Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    honour_umask(folder, directory=True)
    return folder


# ------------------------------------------------------------ disk-full errors
def is_disk_full(error, path=None):
    """Whether an exception comes from a full disk.

    The errno is looked for along the exception's causes; a writer that
    loses it (torch's C++ zip writer raises ``RuntimeError: ... unexpected
    pos``) counts as disk-full when the file system of ``path`` has almost
    no space left.

    Arguments
    ---------
    error : BaseException
        The exception raised while writing.
    path : str or os.PathLike, optional
        The file being written.

    Returns
    -------
    bool
        True for ENOSPC / EDQUOT.

    Example
    -------
    >>> is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    True
    >>> is_disk_full(ValueError("bad"))
    False
    """
    seen = set()
    current = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    if path is None or not isinstance(error, OSError | RuntimeError):
        return False
    folder = pathlib.Path(path)
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


@contextlib.contextmanager
def disk_full_as_error(path, detail=None):
    """Turns a disk-full failure inside the block into DiskFullError.

    Arguments
    ---------
    path : str or os.PathLike
        The file being written (named in the error).
    detail : str, optional
        What is being written.

    Yields
    ------
    None

    Raises
    ------
    DiskFullError
        When the block fails because the disk is full.

    Example
    -------
    >>> try:
    ...     with disk_full_as_error("/x/y.ckpt", "checkpoint file"):
    ...         raise OSError(errno.ENOSPC, "No space left on device")
    ... except DiskFullError as error:
    ...     print(str(error)[:58])
    no space left on the device while writing checkpoint file
    """
    try:
        yield
    except DiskFullError:
        raise
    except (OSError, RuntimeError) as error:
        if is_disk_full(error, path):
            raise DiskFullError(path, detail) from error
        raise


# ---------------------------------------------------------------- atomic files
@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """Opens a temporary file beside ``path`` that replaces it on success.

    The data is flushed to disk and moved over ``path`` with ``os.replace``
    only when the ``with`` block ends without an exception; otherwise the
    temporary file is removed and ``path`` is left as it was. The file gets
    the mode the umask gives, and a full disk raises :class:`DiskFullError`
    naming ``path``.

    Arguments
    ---------
    path : str or os.PathLike
        The file to write.
    mode : str
        ``"w"`` (text) or ``"wb"`` (binary).
    **kwargs
        Passed to ``open`` (e.g. ``newline=""``, ``encoding``).

    Yields
    ------
    file object
        The open temporary file.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> with atomic_open(folder / "a.txt") as out:
    ...     _ = out.write("hello")
    >>> (folder / "a.txt").read_text()
    'hello'
    """
    path = pathlib.Path(path)
    with disk_full_as_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    with disk_full_as_error(path):
        handle, tmp_name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    try:
        with disk_full_as_error(path):
            with os.fdopen(handle, mode, **kwargs) as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            honour_umask(tmp_name)
            os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_name)
        raise


def write_text_atomic(path, text):
    """Writes ``text`` to ``path`` atomically.

    Arguments
    ---------
    path : str or os.PathLike
        The file to write.
    text : str
        Its whole content.

    Example
    -------
    >>> path = getfixture("tmp_path") / "note.txt"
    >>> write_text_atomic(path, "done\\n")
    >>> path.read_text()
    'done\\n'
    """
    with atomic_open(path, "w") as out:
        out.write(text)


def write_bytes_atomic(path, data):
    """Writes ``data`` to ``path`` atomically.

    Arguments
    ---------
    path : str or os.PathLike
        The file to write.
    data : bytes
        Its whole content.

    Example
    -------
    >>> path = getfixture("tmp_path") / "blob.bin"
    >>> write_bytes_atomic(path, b"\\x00\\x01")
    >>> path.read_bytes()
    b'\\x00\\x01'
    """
    with atomic_open(path, "wb") as out:
        out.write(data)


def sync_folder(folder):
    """Flushes a folder's entries (new names, renames) to disk.

    Arguments
    ---------
    folder : str or os.PathLike
        The folder.

    Example
    -------
    >>> sync_folder(getfixture("tmp_path"))
    """
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


# ------------------------------------------------------------ output folders
def ensure_writable_folder(folder):
    """Creates ``folder`` if needed and checks that files can be made in it.

    Arguments
    ---------
    folder : str or os.PathLike
        The output folder.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    OutputFolderError
        When it cannot be created or written (read-only file system, no
        permission, a file in the way).
    DiskFullError
        When the disk is already full.

    Example
    -------
    >>> ensure_writable_folder(getfixture("tmp_path") / "new").is_dir()
    True
    """
    folder = pathlib.Path(folder)
    try:
        with disk_full_as_error(folder):
            folder.mkdir(parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
            os.close(handle)
            os.remove(probe)
    except DiskFullError:
        raise
    except FileExistsError as error:
        raise OutputFolderError(folder, "a file is in the way") from error
    except NotADirectoryError as error:
        raise OutputFolderError(folder, "a file is in the way") from error
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise OutputFolderError(folder, reason.lower()) from error
    return folder


# ---------------------------------------------------------------------- locks
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
    >>> record = {"pid": 12, "host": "gpu1", "purpose": "training",
    ...           "started": "2026-01-01T10:00:00+00:00",
    ...           "command": "train.py x.yaml"}
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
