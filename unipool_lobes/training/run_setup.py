"""A training run's command-line options and set-up errors, for scripts.

SpeechBrain's ``parse_arguments`` rejects options it does not know, so a
recipe script takes its own (``--ddp_timeout=SECONDS``, a bare
``--resume_with_changed_hparams``) out of ``argv`` first
(:func:`pop_option`). :func:`lock_run_folder` holds the output folder for
the life of the process, so a second run into it is refused, naming the
first. :data:`RUN_ERRORS` are the errors of a run's set-up or inputs that a
script reports in one line with exit code 2.

Authors
 * unipool-sv developers 2026
"""

from unipool_lobes.training.checkpoints import CheckpointCorruptError
from unipool_lobes.training.checks import (
    HparamsChangedError,
    OverrideTypeError,
    ScheduleError,
)
from unipool_lobes.utils.safe_io import (
    DiskFullError,
    FolderBusyError,
    OutputFolderError,
    lock_folder,
)

__all__ = ["RUN_ERRORS", "lock_run_folder", "pop_option"]

# Errors of the run's set-up or of its inputs: one line, exit code 2.
RUN_ERRORS = (
    FolderBusyError,
    OutputFolderError,
    DiskFullError,
    CheckpointCorruptError,
    HparamsChangedError,
    OverrideTypeError,
    ScheduleError,
)

# The locks of this process's output folders, held until the process ends.
_RUN_LOCKS = []


def lock_run_folder(output_folder):
    """Refuses a read-only or busy output folder, else locks it.

    The lock is held until the process ends.

    Arguments
    ---------
    output_folder : str
        The run's output folder (created if missing).

    Raises
    ------
    unipool_lobes.utils.safe_io.FolderBusyError
        If another process holds it.
    unipool_lobes.utils.safe_io.OutputFolderError
        If it cannot be written.

    Example
    -------
    >>> lock_run_folder(str(getfixture("tmp_path") / "run"))
    """
    _RUN_LOCKS.append(lock_folder(output_folder, "training"))


def pop_option(argv, name, kind, default):
    """Takes ``--name=value`` (or a bare flag) out of ``argv``.

    Arguments
    ---------
    argv : list of str
        Command-line arguments.
    name : str
        The option, with its dashes (``"--ddp_timeout"``).
    kind : type
        ``bool`` (a bare flag, or ``=1/true/yes``) or a converter such as
        ``float``.
    default : object
        The value when the option is absent.

    Returns
    -------
    rest : list of str
        ``argv`` without the option.
    value : object
        Its value.

    Raises
    ------
    ValueError
        If the value does not convert.

    Example
    -------
    >>> pop_option(["a.yaml", "--ddp_timeout=60"], "--ddp_timeout", float, 7)
    (['a.yaml'], 60.0)
    >>> pop_option(["a.yaml", "--resume"], "--resume", bool, False)
    (['a.yaml'], True)
    """
    rest, value = [], default
    for arg in argv:
        if arg == name and kind is bool:
            value = True
        elif arg.startswith(f"{name}="):
            text = arg.split("=", 1)[1]
            try:
                value = (
                    text.lower() in ("1", "true", "yes")
                    if kind is bool
                    else kind(text)
                )
            except ValueError:
                raise ValueError(
                    f"{arg}: not a valid {kind.__name__}"
                ) from None
        else:
            rest.append(arg)
    return rest, value
