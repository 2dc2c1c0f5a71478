"""Starts a run's modules from another run's best checkpoint or a model.

Fine-tuning chains runs: the LAP pipeline's second phase starts from the
best checkpoint of the first, the third from the second's
(``spec/lap_pipeline.md`` §1), and a user fine-tunes a trained model on new
data the same way. ``init_from`` in a yaml names the source, a training run
folder (its best validation-EER checkpoint is used) or a pretrained folder
(``unipool-sv export``'s, or any folder of ``<module>.ckpt`` files), and
``init_modules`` the modules to fill. Loading is strict: a module file
that is missing, or a state dict with missing, unexpected or misshaped
keys, is an error naming the file and the keys. The recipe script applies
it to a fresh run only; a resumed run continues from its own checkpoints.

Authors
 * unipool-sv developers 2026
"""

import pathlib

from unipool_lobes.inference.loading import load_state_dict_strict
from unipool_lobes.inference.run_folder import best_checkpoint, is_run_folder

__all__ = ["init_checkpoint_folder", "init_modules_from"]


def init_checkpoint_folder(source):
    """The folder whose ``<module>.ckpt`` files initialise a run.

    Arguments
    ---------
    source : str or os.PathLike
        A training run folder (``save/CKPT+*``) or a pretrained folder.

    Returns
    -------
    pathlib.Path
        The run's best checkpoint (lowest validation EER), or ``source``.

    Raises
    ------
    FileNotFoundError
        If ``source`` is not a folder, or a run without a checkpoint with
        a validation EER.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> init_checkpoint_folder(folder) == folder
    True
    """
    folder = pathlib.Path(source)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"init_from: {source} is not a folder (a training run folder or "
            "a pretrained model folder)"
        )
    if is_run_folder(folder):
        checkpoint, _ = best_checkpoint(folder)
        return checkpoint
    return folder


def init_modules_from(source, modules, names):
    """Loads the named modules' weights from ``source``, strictly.

    Arguments
    ---------
    source : str or os.PathLike
        A training run folder or a pretrained folder (see
        :func:`init_checkpoint_folder`).
    modules : dict
        Module name to ``torch.nn.Module`` (a recipe's ``modules``).
    names : list of str
        The modules to fill, each from ``<name>.ckpt``.

    Returns
    -------
    pathlib.Path
        The folder the weights came from.

    Raises
    ------
    KeyError
        If a name is not one of ``modules``.
    FileNotFoundError
        If the source has no ``<name>.ckpt`` for a named module.
    unipool_lobes.inference.speaker.CheckpointMismatchError
        If a state dict does not fit its module (the keys are named).

    Example
    -------
    >>> import torch
    >>> run = getfixture("tmp_path")
    >>> torch.save(torch.nn.Linear(3, 2).state_dict(), run / "head.ckpt")
    >>> head = torch.nn.Linear(3, 2)
    >>> folder = init_modules_from(run, {"head": head}, ["head"])
    >>> try:
    ...     init_modules_from(run, {"body": head}, ["body"])
    ... except FileNotFoundError as error:
    ...     print(str(error).split(": ", 1)[1])
    no body.ckpt for the module body (the source holds: head)
    """
    folder = init_checkpoint_folder(source)
    unknown = [name for name in names if name not in modules]
    if unknown:
        raise KeyError(
            f"init_modules names {', '.join(unknown)}, not among the "
            f"modules ({', '.join(modules)})"
        )
    for name in names:
        path = folder / f"{name}.ckpt"
        if not path.is_file():
            held = sorted(p.stem for p in folder.glob("*.ckpt"))
            kind = (
                "" if held else "; it is no run folder either (no save/CKPT+*)"
            )
            raise FileNotFoundError(
                f"init_from {folder}: no {name}.ckpt for the module {name} "
                f"(the source holds: {', '.join(held) or 'no .ckpt file'}"
                f"{kind})"
            )
        load_state_dict_strict(modules[name], path)
    return folder
