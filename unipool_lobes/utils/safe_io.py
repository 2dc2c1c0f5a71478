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

The disk-full and output-folder errors live in
:mod:`unipool_lobes.utils.disk_errors`, the locks in
:mod:`unipool_lobes.utils.folder_locks`; their names are importable from
here as well.

Authors
 * unipool-sv developers 2026
"""

import contextlib
import json
import os
import pathlib
import tempfile

from unipool_lobes.utils.disk_errors import (
    DISK_FULL_ERRNOS,
    NEARLY_FULL_BYTES,
    NOT_WRITABLE_ERRNOS,
    DiskFullError,
    OutputFolderError,
    disk_full_as_error,
    ensure_writable_folder,
    is_disk_full,
)
from unipool_lobes.utils.folder_locks import (
    LOCK_NAME,
    FolderBusyError,
    FolderLock,
    describe_holder,
    lock_folder,
    lock_target,
)

__all__ = [
    "DISK_FULL_ERRNOS",
    "LOCK_NAME",
    "NEARLY_FULL_BYTES",
    "NOT_WRITABLE_ERRNOS",
    "DiskFullError",
    "FolderBusyError",
    "FolderLock",
    "OutputFolderError",
    "atomic_open",
    "current_umask",
    "describe_holder",
    "disk_full_as_error",
    "ensure_writable_folder",
    "honour_umask",
    "is_disk_full",
    "lock_folder",
    "lock_target",
    "make_temporary_folder",
    "sync_folder",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


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


def write_json_atomic(path, content):
    """Writes ``content`` as indented JSON to ``path`` atomically.

    Arguments
    ---------
    path : str or os.PathLike
        The file to write.
    content : dict or list
        JSON-serialisable content.

    Example
    -------
    >>> path = getfixture("tmp_path") / "results.json"
    >>> write_json_atomic(path, {"EER": 1.5})
    >>> json.loads(path.read_text())
    {'EER': 1.5}
    """
    write_text_atomic(path, json.dumps(content, indent=2) + "\n")


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
