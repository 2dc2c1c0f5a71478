"""The training run folder an export reads: its best checkpoint and files.

A run folder of ``recipes/train_speaker_embeddings.py`` holds the resolved
``hyperparams.yaml``, ``save/label_encoder.txt``, ``results.json`` and
``save/CKPT+*/`` checkpoints whose ``CKPT.yaml`` records the validation
``EER``: :func:`best_checkpoint` picks the one of lowest EER, and
:func:`run_backend_files` the score back-end files the run wrote.

Authors
 * unipool-sv developers 2026
"""

import logging
import pathlib

from unipool_lobes.scoring.score_backend import BACKEND_FILES
from unipool_lobes.training.checkpoint_files import (
    complete_checkpoints,
    incomplete_checkpoints,
)

__all__ = [
    "best_checkpoint",
    "is_run_folder",
    "run_backend_files",
    "training_cwd",
]

# The export's logger: its messages keep the name they had.
logger = logging.getLogger("unipool_lobes.inference.export")


def best_checkpoint(run_folder):
    """Returns the checkpoint folder of a run with the lowest validation EER.

    Only complete end-of-interval checkpoints (whose ``CKPT.yaml`` has an
    ``EER``) count; intra-epoch ones are skipped.

    Arguments
    ---------
    run_folder : str or os.PathLike
        A training run folder (with ``save/CKPT+*``).

    Returns
    -------
    folder : pathlib.Path
        The best ``CKPT+*`` folder.
    meta : dict
        Its ``CKPT.yaml`` (``EER``, ``EER_threshold``, ``step``...).

    Raises
    ------
    FileNotFoundError
        If the run has no checkpoint with a validation EER.

    Example
    -------
    >>> run = getfixture("tmp_path")
    >>> for name, eer in [("CKPT+a", 12.5), ("CKPT+b", 7.0)]:
    ...     (run / "save" / name).mkdir(parents=True)
    ...     _ = (run / "save" / name / "CKPT.yaml").write_text(f"EER: {eer}")
    >>> folder, meta = best_checkpoint(run)
    >>> folder.name, meta["EER"]
    ('CKPT+b', 7.0)
    """
    save = pathlib.Path(run_folder) / "save"
    candidates = [
        (float(c.meta["EER"]), c.path, c.meta)
        for c in complete_checkpoints(save)
        if c.meta.get("EER") is not None
    ]
    broken = incomplete_checkpoints(save)
    for folder, reason in broken:
        logger.warning("%s is skipped: incomplete (%s)", folder, reason)
    if not candidates:
        found = "".join(
            f"; {folder} is incomplete ({reason})" for folder, reason in broken
        )
        raise FileNotFoundError(
            f"no complete checkpoint with a validation EER in {save} "
            f"(expected save/CKPT+*/CKPT.yaml with an 'EER' key){found}"
        )
    _, folder, meta = min(candidates, key=lambda item: item[0])
    return folder, meta


def is_run_folder(folder):
    """Whether ``folder`` is a training run (has ``save/CKPT+*``).

    Arguments
    ---------
    folder : str or os.PathLike
        Any folder.

    Returns
    -------
    bool
        True for a run folder, False otherwise (e.g. a pretrained folder).

    Example
    -------
    >>> is_run_folder(str(getfixture("tmp_path")))
    False
    """
    return any((pathlib.Path(folder) / "save").glob("CKPT+*"))


def training_cwd(run_folder, output_folder):
    """The folder training ran from, told by the run's ``output_folder``.

    A relative ``output_folder`` (e.g. ``results/unipool_vctk/1234``) is
    the tail of the run folder's absolute path; what precedes it is the
    folder the recipe ran in.

    Arguments
    ---------
    run_folder : str or os.PathLike
        The run folder.
    output_folder : str
        The run's ``output_folder`` hyperparameter.

    Returns
    -------
    pathlib.Path or None
        The training folder; None when ``output_folder`` is absolute or not
        a tail of the run folder.

    Example
    -------
    >>> str(training_cwd("/x/recipes/VCTK/results/up/1234", "results/up/1234"))
    '/x/recipes/VCTK'
    >>> training_cwd("/x/run", "/x/run") is None
    True
    """
    relative = pathlib.PurePath(str(output_folder))
    if relative.is_absolute():
        return None
    run = pathlib.Path(run_folder).resolve()
    tail = [part for part in relative.parts if part not in ("", ".")]
    if not tail or list(run.parts[-len(tail) :]) != tail:
        return None
    return pathlib.Path(*run.parts[: -len(tail)])


def run_backend_files(run_folder):
    """The score back-end files a run folder holds, for the export.

    The training recipe writes ``score_backend.pt`` and
    ``calibration.json`` (``unipool_lobes.scoring.calibration.BACKEND_FILES``)
    directly into the run folder (its ``output_folder``).

    Arguments
    ---------
    run_folder : str or os.PathLike
        A training run folder.

    Returns
    -------
    list of str
        Both file names, or none.

    Raises
    ------
    FileNotFoundError
        If the run holds only one of the two.

    Example
    -------
    >>> run_backend_files(getfixture("tmp_path"))
    []
    """
    run = pathlib.Path(run_folder)
    present = [name for name in BACKEND_FILES if (run / name).is_file()]
    if present and len(present) != len(BACKEND_FILES):
        missing = [name for name in BACKEND_FILES if name not in present]
        raise FileNotFoundError(
            f"the run {run} has {present[0]} but no {missing[0]}: the score "
            "back-end needs both"
        )
    return present
