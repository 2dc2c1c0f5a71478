"""File-system helpers of the tests that need a full disk."""

import os
import shutil


def fill_disk(folder, leave_bytes=0):
    """Fills the file system of ``folder`` but for ``leave_bytes``.

    Arguments
    ---------
    folder : pathlib.Path
        A folder on a (small) file system.
    leave_bytes : int
        Free bytes to leave.

    Returns
    -------
    pathlib.Path
        The filler file (delete it to free the space).
    """
    filler = folder / "filler.bin"
    free = shutil.disk_usage(folder).free - leave_bytes
    with open(filler, "wb") as out:
        chunk = b"\0" * (1 << 16)
        while free > 0:
            try:
                free -= out.write(chunk[: min(len(chunk), free)])
            except OSError:
                break
        out.flush()
        os.fsync(out.fileno())
    return filler
