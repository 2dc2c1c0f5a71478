"""A SpeechBrain checkpointer that is atomic, verified and DDP-consistent.

SpeechBrain's ``Checkpointer`` has four problems this one fixes:

* **Half-written checkpoints.** It writes a checkpoint's meta file (what
  makes a folder count as a checkpoint) *before* the parameter files, so a
  run killed while saving left a checkpoint the re-run crashed on. Here the
  meta file is written last, under a temporary name renamed into place once
  every parameter file is complete and flushed to disk.
* **Silent corruption.** Nothing tells a damaged parameter file from a good
  one. Here the meta file records the size and SHA-256 of every parameter
  file, and loading checks them (:class:`CheckpointCorruptError` names the
  file).
* **Collectives that depend on the file system.** Under DDP every process
  listed the checkpoint folder itself to decide what to delete and what to
  recover. A process that listed it before the main process had renamed the
  new meta file into place decided differently, skipped a collective the
  main process made, and the run hung at the first checkpoint rotation.
  Here the main process alone writes, lists and deletes; every other
  process gets the main process's listing and the outcome of each write
  (success or the very error), so all processes issue the same collectives
  whatever the file system shows them
  (:func:`~unipool_lobes.training.distributed.decide_on_main`).
* **Deleting what it cannot account for.** A checkpoint folder is deleted
  only when it is provably an interrupted save of this checkpointer (its
  meta file still under the temporary name) or an interrupted deletion (a
  folder renamed for deletion). Any other incomplete folder is moved aside
  into ``moved_aside/`` with a warning naming it.

A full disk while saving removes the incomplete checkpoint and raises
:class:`~unipool_lobes.utils.safe_io.DiskFullError` naming the file; the earlier
checkpoints are untouched (old ones are deleted only after a save
succeeded).

The on-disk side (meta files, checksums, completeness, loading state
dicts) lives in :mod:`unipool_lobes.training.checkpoint_files`; its names
are importable from here as well.

Authors
 * unipool-sv developers 2026
"""

import contextlib
import logging
import os
import shutil
import time

import torch
import yaml
from speechbrain.utils import checkpoints as sb_checkpoints
from speechbrain.utils.distributed import MainProcessContext, if_main_process

from unipool_lobes.training.checkpoint_files import (
    CHECKSUMS_KEY,
    HASH_CHUNK,
    META_NAME,
    CheckpointCorruptError,
    check_finite_parameters,
    complete_checkpoints,
    file_checksum,
    file_record,
    incomplete_checkpoints,
    incomplete_reason,
    load_state_dict,
    read_meta,
    verify_checkpoint,
    verify_files,
)
from unipool_lobes.training.distributed import decide_on_main
from unipool_lobes.utils.disk_errors import (
    DiskFullError,
    disk_full_as_error,
    is_disk_full,
)
from unipool_lobes.utils.safe_io import sync_folder

__all__ = [
    "CHECKSUMS_KEY",
    "DELETING_PREFIX",
    "HASH_CHUNK",
    "META_NAME",
    "MOVED_ASIDE",
    "PARTIAL_SUFFIX",
    "AtomicCheckpointer",
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

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
DELETING_PREFIX = ".deleting-"
MOVED_ASIDE = "moved_aside"


class AtomicCheckpointer(sb_checkpoints.Checkpointer):
    """``speechbrain.utils.checkpoints.Checkpointer``, atomic and verified.

    Same arguments and interface as SpeechBrain's checkpointer. Under DDP
    the main process writes, lists and deletes, and shares each outcome with
    the other processes, so they take the same decisions (the save hooks of
    every recoverable run on the main process only: recoverables whose
    saving needs every process, such as FSDP-sharded modules, are not
    supported). Register every recoverable before recovering.

    Example
    -------
    >>> import torch
    >>> tmpdir = getfixture("tmpdir")
    >>> model = torch.nn.Linear(2, 2)
    >>> checkpointer = AtomicCheckpointer(tmpdir, {"model": model})
    >>> ckpt = checkpointer.save_checkpoint(meta={"EER": 3.0})
    >>> sorted(p.name for p in ckpt.path.iterdir())
    ['CKPT.yaml', 'model.ckpt']
    >>> sorted(ckpt.meta["checksums"])
    ['model.ckpt']
    >>> checkpointer.recover_if_possible().meta["EER"]
    3.0
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._listing = None

    # ------------------------------------------------------------- saving
    def save_checkpoint(
        self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO
    ):
        """Saves a checkpoint; its meta file is written last, atomically.

        Arguments
        ---------
        meta : mapping, optional
            Added to the meta file (``unixtime``, ``end-of-epoch`` and the
            ``checksums`` of the parameter files are always included).
        end_of_epoch : bool, optional
            Whether the checkpoint is at the end of an epoch.
        name : str, optional
            A custom name (prefixed with ``CKPT+``).
        verbosity : int
            Logging level of the save message.

        Returns
        -------
        Checkpoint or None
            The saved checkpoint (None on the other processes).

        Raises
        ------
        DiskFullError
            When the disk filled up (on every process); the incomplete
            checkpoint is removed, the earlier ones are intact.
        """
        checkpoint = decide_on_main(
            self._write_checkpoint, dict(meta), end_of_epoch, name
        )
        if not if_main_process():
            return None
        kind = "end-of-epoch" if end_of_epoch else "intra-epoch"
        logger.log(
            verbosity, f"Saved an {kind} checkpoint in {checkpoint.path}"
        )
        return checkpoint

    def _write_checkpoint(self, meta, end_of_epoch, name):
        """Writes one checkpoint (main process only)."""
        self._tidy()
        if name is None:
            folder = self._new_checkpoint_dirpath()
        else:
            folder = self._custom_checkpoint_dirpath(name)
        saved_meta = {"unixtime": time.time(), "end-of-epoch": end_of_epoch}
        saved_meta.update(meta)
        partial = folder / f"{META_NAME}{PARTIAL_SUFFIX}"
        current = folder
        try:
            with disk_full_as_error(folder, "checkpoint"):
                os.makedirs(folder, exist_ok=True)
                # Marks the folder as a save in progress: a folder still
                # holding only this name is provably an interrupted save.
                _write_yaml(partial, saved_meta)
            paramfiles = {}
            for recoverable, obj in self.recoverables.items():
                current = (
                    folder / f"{recoverable}{sb_checkpoints.PARAMFILE_EXT}"
                )
                paramfiles[recoverable] = current
                with disk_full_as_error(current, "checkpoint file"):
                    self._save_one(recoverable, obj, current)
            current = folder / META_NAME
            saved_meta[CHECKSUMS_KEY] = {
                path.name: file_record(path)
                for path in paramfiles.values()
                if path.is_file()
            }
            with disk_full_as_error(current, "checkpoint meta file"):
                _write_yaml(partial, saved_meta)
                sync_folder(folder)
                os.replace(partial, folder / META_NAME)
                sync_folder(folder.parent)
        except BaseException as error:
            shutil.rmtree(folder, ignore_errors=True)
            if not isinstance(error, DiskFullError) and is_disk_full(
                error, current
            ):
                raise DiskFullError(current, "checkpoint file") from error
            raise
        return sb_checkpoints.Checkpoint(folder, saved_meta, paramfiles)

    def _save_one(self, name, obj, path):
        """Saves one recoverable to ``path`` and flushes it to disk."""
        hook = self.custom_save_hooks.get(name)
        if hook is None:
            hook = sb_checkpoints.get_default_hook(
                obj, sb_checkpoints.DEFAULT_SAVE_HOOKS
            )
        if hook is None:
            raise RuntimeError(
                f"Don't know how to save {type(obj)}: register a default "
                "hook or add a custom hook for this object."
            )
        if hook is sb_checkpoints.torch_save:
            # Through a Python file: torch's own writer reports a full disk
            # as "unexpected pos" without the errno.
            with open(path, "wb") as out:
                torch.save(obj.state_dict(), out)
                out.flush()
                os.fsync(out.fileno())
            return
        # Hooks wrapped in main_process_only broadcast their result; inside
        # this context they run here only, without a collective.
        with MainProcessContext():
            hook(obj, path)
        if path.is_file():
            with open(path, "rb+") as written:
                os.fsync(written.fileno())

    # ------------------------------------------------------------ listing
    def list_checkpoints(self):
        """Lists the complete checkpoints, as the main process sees them.

        Returns
        -------
        list
            ``Checkpoint`` namedtuples, the same on every process.
        """
        if self._listing is not None:
            return list(self._listing)
        return decide_on_main(self._list_here)

    def _list_here(self):
        required = [
            name
            for name in self.recoverables
            if not self.optional_recoverables.get(name)
            and not name.startswith("dataloader")
        ]
        return complete_checkpoints(self.checkpoints_dir, required)

    @contextlib.contextmanager
    def _one_listing(self):
        """Within the block every listing is the same, taken once."""
        self._listing = self.list_checkpoints()
        try:
            yield
        finally:
            self._listing = None

    # ----------------------------------------------------------- recovery
    def load_checkpoint(self, checkpoint):
        """Loads a checkpoint after checking its files' checksums.

        Arguments
        ---------
        checkpoint : Checkpoint
            The checkpoint to load (from :meth:`list_checkpoints`).

        Raises
        ------
        CheckpointCorruptError
            When a parameter file does not match its checksum (on every
            process; nothing is loaded).
        """
        decide_on_main(verify_checkpoint, checkpoint)
        super().load_checkpoint(checkpoint)

    # ----------------------------------------------------------- deletion
    def delete_checkpoints(
        self,
        *,
        num_to_keep=1,
        min_keys=None,
        max_keys=None,
        importance_keys=[sb_checkpoints.ckpt_recency],
        ckpt_predicate=None,
        verbosity=logging.INFO,
    ):
        """Deletes the least important checkpoints (SpeechBrain's rules).

        The checkpoints to delete are chosen from one listing shared by
        every process; the main process deletes them (each is renamed for
        deletion first, so a deletion cut short is recognised).

        Arguments
        ---------
        num_to_keep : int, optional
            Checkpoints kept for each importance key.
        min_keys : list, optional
            Meta keys whose lowest values are kept.
        max_keys : list, optional
            Meta keys whose highest values are kept.
        importance_keys : list, optional
            Key functions; the highest values are kept.
        ckpt_predicate : callable, optional
            Only checkpoints for which it is True can be deleted.
        verbosity : int
            Logging level of the deletion messages.
        """
        if num_to_keep < 0:
            raise ValueError("Number of checkpoints to keep must be positive.")
        keys = [{"min_key": key} for key in min_keys or []]
        keys += [{"max_key": key} for key in max_keys or []]
        # SpeechBrain's save_and_keep_only appends ckpt_recency to its
        # mutable default list at every call: the same key N times.
        unique = list(dict.fromkeys(importance_keys))
        keys += [{"importance_key": key} for key in unique]
        candidates, protected = set(), set()
        with self._one_listing():
            for key in keys:
                candidates.update(
                    self.find_checkpoints(ckpt_predicate=ckpt_predicate, **key)
                )
                protected.update(
                    self.find_checkpoints(
                        ckpt_predicate=ckpt_predicate,
                        max_num_checkpoints=num_to_keep,
                        **key,
                    )
                )
        doomed = sorted(
            (c.path for c in candidates if c not in protected), key=str
        )
        decide_on_main(self._delete_folders, doomed, verbosity)

    def _delete_folders(self, folders, verbosity):
        """Deletes checkpoint folders (main process only)."""
        for folder in folders:
            trash = folder.with_name(f"{DELETING_PREFIX}{folder.name}")
            os.replace(folder, trash)
            shutil.rmtree(trash)
            logger.log(verbosity, f"Deleted checkpoint in {folder}")

    # ----------------------------------------------------------- clean-up
    def _tidy(self):
        """Removes interrupted saves and deletions, moves other incomplete
        checkpoint folders aside (main process only)."""
        if not self.checkpoints_dir.is_dir():
            return
        required = [
            name
            for name in self.recoverables
            if not self.optional_recoverables.get(name)
            and not name.startswith("dataloader")
        ]
        for path in sorted(self.checkpoints_dir.iterdir()):
            if not path.is_dir():
                continue
            if path.name.startswith(DELETING_PREFIX):
                shutil.rmtree(path, ignore_errors=True)
                logger.info("Finished the interrupted deletion of %s", path)
                continue
            if not path.name.startswith(sb_checkpoints.CKPT_PREFIX):
                continue
            reason = self._tidy_reason(path, required)
            if reason is None:
                continue
            if reason == "interrupted save":
                shutil.rmtree(path, ignore_errors=True)
                logger.info("Removed the interrupted save %s", path)
                continue
            target = self._moved_aside_path(path)
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
            logger.warning(
                "%s is not a complete checkpoint (%s) and was not left by an "
                "interrupted save: moved to %s. Nothing was deleted; remove "
                "it yourself if you do not need it.",
                path,
                reason,
                target,
            )

    @staticmethod
    def _tidy_reason(path, required):
        """None for a complete checkpoint, else what is wrong with it."""
        meta = read_meta(path)
        if meta is not None:
            # A checkpoint with checksums is judged by its own record: one
            # saved before a recoverable was added is complete, not broken.
            if meta.get(CHECKSUMS_KEY):
                required = ()
            return incomplete_reason(path, meta, required)
        if (path / f"{META_NAME}{PARTIAL_SUFFIX}").exists():
            return "interrupted save"
        if not any(path.iterdir()):
            return "interrupted save"  # killed between mkdir and meta
        if (path / META_NAME).exists():
            return f"{META_NAME} is unreadable"
        return f"no {META_NAME}"

    def _moved_aside_path(self, path):
        folder = self.checkpoints_dir / MOVED_ASIDE
        target = folder / path.name
        number = 1
        while target.exists():
            target = folder / f"{path.name}.{number}"
            number += 1
        return target


def _write_yaml(path, content):
    """Writes a meta file and flushes it to disk."""
    with open(path, "w", encoding="utf-8") as out:
        out.write("# yamllint disable\n")
        out.write(yaml.dump(content))
        out.flush()
        os.fsync(out.fileno())
