"""Checkpoint folders on disk: meta files, checksums, completeness.

What :class:`unipool_lobes.training.checkpoints.AtomicCheckpointer` writes
and what every reader of a run folder checks, without collectives: a
checkpoint's meta file (``CKPT.yaml``) records the size and SHA-256 of
every parameter file (:func:`file_record`); a folder is complete when its
files match them (:func:`incomplete_reason`, :func:`complete_checkpoints`);
a parameter file that is truncated, corrupt or holds NaN / inf values is
refused with :class:`CheckpointCorruptError` naming it
(:func:`load_state_dict`, :func:`check_finite_parameters`).

Authors
 * unipool-sv developers 2026
"""

import hashlib
import os
import pathlib

import torch
import yaml
from speechbrain.utils import checkpoints as sb_checkpoints

__all__ = [
    "CHECKSUMS_KEY",
    "HASH_CHUNK",
    "META_NAME",
    "CheckpointCorruptError",
    "check_finite_parameters",
    "complete_checkpoints",
    "file_checksum",
    "file_record",
    "incomplete_checkpoints",
    "incomplete_reason",
    "load_state_dict",
    "read_meta",
    "verify_checkpoint",
    "verify_files",
]

META_NAME = sb_checkpoints.METAFNAME
CHECKSUMS_KEY = "checksums"
HASH_CHUNK = 1 << 22


class CheckpointCorruptError(RuntimeError):
    """A checkpoint file that does not match what was saved."""


def file_checksum(path):
    """The SHA-256 of a file, as hex.

    Arguments
    ---------
    path : str or os.PathLike
        The file.

    Returns
    -------
    str
        64 hex digits.

    Example
    -------
    >>> path = getfixture("tmp_path") / "x"
    >>> _ = path.write_bytes(b"abc")
    >>> file_checksum(path)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for chunk in iter(lambda: source.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path):
    """The size and checksum of a file, as a checkpoint's meta holds them.

    Arguments
    ---------
    path : str or os.PathLike
        The file.

    Returns
    -------
    dict
        ``{"bytes": size, "sha256": hex digest}``.

    Example
    -------
    >>> path = getfixture("tmp_path") / "x"
    >>> _ = path.write_bytes(b"abc")
    >>> file_record(path)["bytes"]
    3
    """
    return {"bytes": os.path.getsize(path), "sha256": file_checksum(path)}


def verify_files(folder, records, what="checkpoint"):
    """Checks files against their recorded sizes and checksums.

    Arguments
    ---------
    folder : str or os.PathLike
        The folder holding the files.
    records : dict
        ``{file name: {"bytes": ..., "sha256": ...}}``.
    what : str
        What the folder is, for messages.

    Raises
    ------
    FileNotFoundError
        Naming the first file that is missing.
    CheckpointCorruptError
        Naming the first file that is truncated or changed.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "a.ckpt").write_bytes(b"abc")
    >>> records = {"a.ckpt": file_record(folder / "a.ckpt")}
    >>> verify_files(folder, records)
    >>> _ = (folder / "a.ckpt").write_bytes(b"abd")
    >>> try:
    ...     verify_files(folder, records)
    ... except CheckpointCorruptError as error:
    ...     print(str(error).split(": ", 1)[1][:45])
    its content does not match the SHA-256 record
    """
    folder = pathlib.Path(folder)
    for name, record in sorted(records.items()):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: missing from the {what} (it was saved with it)"
            )
        size = path.stat().st_size
        if size != record["bytes"]:
            raise CheckpointCorruptError(
                f"{path}: {size} bytes, but {record['bytes']} when the "
                f"{what} was saved: the file is truncated or was changed. "
                "Move this checkpoint folder aside to use an earlier one."
            )
        if file_checksum(path) != record["sha256"]:
            raise CheckpointCorruptError(
                f"{path}: its content does not match the SHA-256 recorded "
                f"when the {what} was saved: the file is corrupt or was "
                "changed. Move this checkpoint folder aside to use an "
                "earlier one."
            )


def read_meta(folder):
    """The meta file (``CKPT.yaml``) of a checkpoint folder, or None.

    Arguments
    ---------
    folder : str or os.PathLike
        A ``CKPT+*`` folder.

    Returns
    -------
    dict or None
        The meta; None when the file is missing or not a yaml mapping.

    Example
    -------
    >>> read_meta(getfixture("tmp_path")) is None
    True
    """
    try:
        with open(pathlib.Path(folder) / META_NAME, encoding="utf-8") as fin:
            meta = yaml.load(fin, Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return None
    return meta if isinstance(meta, dict) else None


def incomplete_reason(folder, meta, required=()):
    """Why a checkpoint folder with a meta file is incomplete, or None.

    A checkpoint is complete when every file its meta records is there with
    the recorded size (checksums are checked on loading, not here: listing
    must stay cheap) and, for checkpoints written before checksums were
    recorded, when it holds a parameter file for each ``required`` name.

    Arguments
    ---------
    folder : str or os.PathLike
        The checkpoint folder.
    meta : dict
        Its meta file.
    required : iterable of str
        Recoverable names that need a ``<name>.ckpt``.

    Returns
    -------
    str or None
        The reason, or None for a complete checkpoint.

    Example
    -------
    >>> incomplete_reason(getfixture("tmp_path"), {}, ["model"])
    'no model.ckpt'
    """
    folder = pathlib.Path(folder)
    records = meta.get(CHECKSUMS_KEY) or {}
    for name, record in sorted(records.items()):
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != record.get("bytes"):
            return f"{name} is not the size it was saved with"
    for name in required:
        if (
            f"{name}{sb_checkpoints.PARAMFILE_EXT}" not in records
            and not (folder / f"{name}{sb_checkpoints.PARAMFILE_EXT}").is_file()
        ):
            return f"no {name}{sb_checkpoints.PARAMFILE_EXT}"
    return None


def complete_checkpoints(checkpoints_dir, required=()):
    """Lists the complete checkpoints of a folder (no collective).

    Arguments
    ---------
    checkpoints_dir : str or os.PathLike
        The folder holding ``CKPT+*`` checkpoints.
    required : iterable of str
        Recoverable names each checkpoint must have a file for.

    Returns
    -------
    list of speechbrain.utils.checkpoints.Checkpoint
        Sorted by folder name.

    Example
    -------
    >>> complete_checkpoints(getfixture("tmp_path") / "nothing")
    []
    """
    folder = pathlib.Path(checkpoints_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if not (
            path.is_dir() and path.name.startswith(sb_checkpoints.CKPT_PREFIX)
        ):
            continue
        try:
            meta = read_meta(path)
            if meta is None or incomplete_reason(path, meta, required):
                continue
            paramfiles = {
                file.stem: file
                for file in path.iterdir()
                if file.suffix == sb_checkpoints.PARAMFILE_EXT
            }
        except FileNotFoundError:
            continue  # deleted meanwhile (read while another process writes)
        found.append(sb_checkpoints.Checkpoint(path, meta, paramfiles))
    return found


def incomplete_checkpoints(checkpoints_dir):
    """Lists the checkpoint folders whose files do not match their meta.

    Arguments
    ---------
    checkpoints_dir : str or os.PathLike
        The folder holding ``CKPT+*`` checkpoints.

    Returns
    -------
    list of tuple
        ``(folder, reason)`` for each checkpoint with a meta file that is
        not complete (see :func:`incomplete_reason`).

    Example
    -------
    >>> incomplete_checkpoints(getfixture("tmp_path"))
    []
    """
    folder = pathlib.Path(checkpoints_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(f"{sb_checkpoints.CKPT_PREFIX}*")):
        try:
            meta = read_meta(path) if path.is_dir() else None
            reason = None if meta is None else incomplete_reason(path, meta)
        except FileNotFoundError:
            continue  # deleted meanwhile
        if reason is not None:
            found.append((path, reason))
    return found


def verify_checkpoint(checkpoint):
    """Checks a checkpoint's files against the checksums of its meta file.

    Checkpoints written before checksums were recorded pass unchecked.

    Arguments
    ---------
    checkpoint : speechbrain.utils.checkpoints.Checkpoint
        The checkpoint.

    Raises
    ------
    CheckpointCorruptError
        Naming the file that does not match.
    """
    records = checkpoint.meta.get(CHECKSUMS_KEY)
    if records:
        verify_files(checkpoint.path, records)


def check_finite_parameters(path, state=None):
    """Refuses a parameter file holding NaN or infinite values.

    Arguments
    ---------
    path : str or os.PathLike
        A state dict saved with ``torch.save``.
    state : dict, optional
        Its content, when already loaded.

    Raises
    ------
    CheckpointCorruptError
        Naming the file and the first tensors that are not finite, or a
        file that cannot be read as a state dict.

    Example
    -------
    >>> path = getfixture("tmp_path") / "m.ckpt"
    >>> torch.save({"w": torch.tensor([1.0, float("nan")])}, path)
    >>> try:
    ...     check_finite_parameters(path)
    ... except CheckpointCorruptError as error:
    ...     print(str(error).split(": ", 1)[1])
    non-finite values (NaN or inf) in w
    """
    if state is None:
        state = load_state_dict(path)
    bad = [
        key
        for key, value in state.items()
        if torch.is_tensor(value)
        and value.is_floating_point()
        and not bool(torch.isfinite(value).all())
    ]
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise CheckpointCorruptError(
            f"{path}: non-finite values (NaN or inf) in "
            f"{', '.join(bad[:5])}{more}"
        )


def load_state_dict(path):
    """Loads a state dict (tensors only), naming the file if it cannot.

    Arguments
    ---------
    path : str or os.PathLike
        A state dict saved with ``torch.save``.

    Returns
    -------
    dict
        The state dict, on the CPU.

    Raises
    ------
    CheckpointCorruptError
        When the file is truncated, corrupt or not a state dict.

    Example
    -------
    >>> path = getfixture("tmp_path") / "x.ckpt"
    >>> _ = path.write_bytes(b"PK")
    >>> try:
    ...     load_state_dict(path)
    ... except CheckpointCorruptError as error:
    ...     print(str(error).split(": ", 1)[1][:38])
    cannot be read as a parameter file (it
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointCorruptError(
            f"{path}: cannot be read as a parameter file (it is truncated "
            f"or corrupt): {str(error).splitlines()[0][:200]}"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointCorruptError(
            f"{path}: holds a {type(state).__name__}, not a state dict"
        )
    return state
