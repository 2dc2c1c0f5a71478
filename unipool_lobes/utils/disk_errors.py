"""Disk-full and unwritable-folder errors, raised with a clear message.

A full disk stops the work with :class:`DiskFullError`, which names the
file being written and says the disk is full (:func:`disk_full_as_error`
turns the low-level failure into it, :func:`is_disk_full` recognises one);
an output folder that cannot be written (read-only file system,
permissions) is refused before any work starts with
:class:`OutputFolderError` (:func:`ensure_writable_folder`).

Authors
 * unipool-sv developers 2026
"""

import contextlib
import errno
import os
import pathlib
import shutil
import tempfile

__all__ = [
    "DISK_FULL_ERRNOS",
    "NEARLY_FULL_BYTES",
    "NOT_WRITABLE_ERRNOS",
    "DiskFullError",
    "OutputFolderError",
    "disk_full_as_error",
    "ensure_writable_folder",
    "is_disk_full",
]

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
    >>> message = str(DiskFullError("/data/out/train.csv"))
    >>> print(message.replace(": ", ":\\n").replace("; ", ";\\n"))
    no space left on the device while writing /data/out/train.csv:
    the disk is full. Free some space and run the same command again;
    the files written before are intact.
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
    >>> message = str(OutputFolderError("/ro/run", "read-only file system"))
    >>> print(message.replace("; ", ";\\n"))
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
    ...     print(str(error)[:57])
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
