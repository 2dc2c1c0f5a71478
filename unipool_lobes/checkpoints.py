"""A SpeechBrain checkpointer whose checkpoints are never half-written.

SpeechBrain's ``Checkpointer`` writes a checkpoint's meta file (which is
what makes a folder count as a checkpoint) *before* the parameter files, and
deletes old checkpoints with one ``rmtree``. A run killed while saving or
deleting leaves a folder that is recovered from but holds a truncated or
missing ``.ckpt``: the re-run then crashes in ``torch.load`` instead of
resuming. Here the meta file is written last and atomically (temporary name,
then rename), and a checkpoint missing the file of a recoverable (a deletion
cut short) is not listed, so only complete checkpoints are ever recovered.

Authors
 * unipool-sv developers 2026
"""

import logging
import os
import shutil

from speechbrain.utils import checkpoints as sb_checkpoints
from speechbrain.utils.distributed import if_main_process

PARTIAL_SUFFIX = ".partial"


class AtomicCheckpointer(sb_checkpoints.Checkpointer):
    """``speechbrain.utils.checkpoints.Checkpointer`` with atomic saving.

    Same arguments and behaviour as SpeechBrain's checkpointer; only the
    order of the writes differs, and incomplete checkpoints are not listed.
    Folders left by an interrupted save or deletion are removed at the next
    save. Make sure to register every recoverable before recovering.

    Example
    -------
    >>> import torch
    >>> tmpdir = getfixture("tmpdir")
    >>> model = torch.nn.Linear(2, 2)
    >>> checkpointer = AtomicCheckpointer(tmpdir, {"model": model})
    >>> ckpt = checkpointer.save_checkpoint(meta={"EER": 3.0})
    >>> sorted(p.name for p in ckpt.path.iterdir())
    ['CKPT.yaml', 'model.ckpt']
    >>> checkpointer.recover_if_possible().meta["EER"]
    3.0
    """

    def save_checkpoint(
        self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO
    ):
        """Saves a checkpoint; its meta file is written last, atomically.

        Arguments
        ---------
        meta : mapping, optional
            Added to the meta file (``unixtime`` is always included).
        end_of_epoch : bool, optional
            Whether the checkpoint is at the end of an epoch.
        name : str, optional
            A custom name (prefixed with ``CKPT+``).
        verbosity : int
            Logging level of the save message.

        Returns
        -------
        Checkpoint or None
            The saved checkpoint (None on non-main processes).
        """
        if if_main_process():
            self._remove_interrupted_saves()
        checkpoint = super().save_checkpoint(
            meta=meta, end_of_epoch=end_of_epoch, name=name, verbosity=verbosity
        )
        if checkpoint is not None:
            meta_path = checkpoint.path / sb_checkpoints.METAFNAME
            os.replace(f"{meta_path}{PARTIAL_SUFFIX}", meta_path)
        return checkpoint

    def _save_checkpoint_metafile(
        self, fpath, meta_to_include={}, end_of_epoch=True
    ):
        # Written under a temporary name; save_checkpoint renames it once
        # every parameter file is complete.
        return super()._save_checkpoint_metafile(
            f"{fpath}{PARTIAL_SUFFIX}", meta_to_include, end_of_epoch
        )

    def list_checkpoints(self):
        """Lists the complete checkpoints only.

        A checkpoint counts when it holds a parameter file for every
        recoverable: one whose deletion was interrupted (SpeechBrain removes
        a checkpoint with one ``rmtree``) is ignored, and removed at the
        next save.

        Returns
        -------
        list
            ``Checkpoint`` namedtuples.
        """
        return [c for c in super().list_checkpoints() if self._complete(c)]

    def _complete(self, checkpoint):
        return all(name in checkpoint.paramfiles for name in self.recoverables)

    def _remove_interrupted_saves(self):
        if not self.checkpoints_dir.is_dir():
            return
        complete = {c.path for c in self.list_checkpoints()}
        for path in self.checkpoints_dir.iterdir():
            if (
                path.is_dir()
                and path.name.startswith(sb_checkpoints.CKPT_PREFIX)
                and path not in complete
            ):
                shutil.rmtree(path, ignore_errors=True)
