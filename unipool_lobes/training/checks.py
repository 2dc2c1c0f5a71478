"""Checks a training run makes before it starts, so it never does less than
asked or silently continues a different experiment.

* :func:`check_override_types`: a command-line override whose type does not
  fit the yaml's value (``--batch_size=abc``) is an error naming the key,
  before anything is built.
* :func:`check_schedule`: the number of validation intervals covers
  ``number_of_steps`` (a last, partial interval is trained and validated)
  and training stops at exactly ``number_of_steps`` optimizer steps.
* :func:`hparams_changes` / :func:`check_resume`: a run resumed from its
  checkpoints with other hyperparameters than it was started with is
  refused, unless asked for explicitly (then the learning-rate schedule is
  rebuilt for the new values instead of being restored).

Authors
 * unipool-sv developers 2026
"""

import io
import logging
import math
import pathlib

import ruamel.yaml
from hyperpyyaml import resolve_references
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar

logger = logging.getLogger(__name__)

# Keys whose value may change between a run and its resumption: where the
# data or the cache lives, how it is loaded, how often checkpoints are made.
RESUME_FREE_KEYS = frozenset(
    {
        "data_folder",
        "ssl_cache",
        "skip_prep",
        "num_workers",
        "eval_batch_size",
        "eval_max_batch_seconds",
        "ckpt_interval_minutes",
        "ckpt_interval_steps",
        "noprogressbar",
    }
)
RESUME_FLAG = "--resume_with_changed_hparams"


class HparamsChangedError(RuntimeError):
    """A run resumed with other hyperparameters than it was started with."""


class ScheduleError(ValueError):
    """A schedule that would train fewer (or more) steps than asked."""


class OverrideTypeError(ValueError):
    """A command-line override whose value has the wrong type."""


def _round_trip():
    return ruamel.yaml.YAML(typ="rt")


def check_override_types(hparams_file, overrides):
    """Checks that each override has the type of the yaml's value.

    Only keys whose value in the yaml is a plain number or boolean are
    checked: an integer key takes an integer, a float key an integer or a
    float, a boolean key ``True``/``False``.

    Arguments
    ---------
    hparams_file : str or os.PathLike
        The recipe's yaml.
    overrides : str or dict
        The overrides, as ``speechbrain.parse_arguments`` gives them.

    Raises
    ------
    OverrideTypeError
        Naming the key, the value given and the type expected.

    Example
    -------
    >>> path = getfixture("tmp_path") / "h.yaml"
    >>> _ = path.write_text("batch_size: 128\\nlr: 0.003\\n")
    >>> check_override_types(path, "lr: 1e-3")
    >>> try:
    ...     check_override_types(path, "batch_size: abc")
    ... except ValueError as error:
    ...     print(error)
    --batch_size=abc: batch_size must be an integer (the yaml has 128)
    """
    if isinstance(overrides, str):
        reader = ruamel.yaml.YAML(typ="safe", pure=True)
        reader.allow_duplicate_keys = True  # the last one wins, as in SB
        given = reader.load(overrides) or {}
    else:
        given = dict(overrides or {})
    with open(hparams_file, encoding="utf-8") as source:
        defaults = _round_trip().load(source) or {}
    for key, value in given.items():
        default = defaults.get(key) if isinstance(defaults, dict) else None
        if isinstance(default, bool):
            fits, expected = isinstance(value, bool), "True or False"
        elif isinstance(default, int):
            fits = isinstance(value, int) and not isinstance(value, bool)
            expected = "an integer"
        elif isinstance(default, float):
            fits = isinstance(value, int | float) and not isinstance(
                value, bool
            )
            expected = "a number"
        else:
            continue  # strings, references, objects: not checked here
        if not fits:
            raise OverrideTypeError(
                f"--{key}={value}: {key} must be {expected} (the yaml has "
                f"{default})"
            )


def check_schedule(hparams):
    """Checks that training will run exactly ``number_of_steps`` steps.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters: ``number_of_steps``,
        ``valid_interval_steps``, ``epoch_counter`` (one epoch is one
        validation interval), ``optimizer_step_limit`` and, when present,
        the ``total_steps`` of ``lr_scheduler``.

    Raises
    ------
    ScheduleError
        Naming the keys that disagree.

    Example
    -------
    >>> from speechbrain.utils.epoch_loop import EpochCounter
    >>> hparams = {
    ...     "number_of_steps": 25,
    ...     "valid_interval_steps": 10,
    ...     "epoch_counter": EpochCounter(3),
    ...     "optimizer_step_limit": 25,
    ... }
    >>> check_schedule(hparams)
    >>> hparams["epoch_counter"] = EpochCounter(2)
    >>> try:
    ...     check_schedule(hparams)
    ... except ScheduleError as error:
    ...     print(str(error)[-50:])
    number_of_steps=25 (needs 3: the last one partial)
    """
    steps = hparams["number_of_steps"]
    interval = hparams["valid_interval_steps"]
    for key, value in (
        ("number_of_steps", steps),
        ("valid_interval_steps", interval),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ScheduleError(
                f"{key} must be a positive integer, got {value!r}"
            )
    needed = math.ceil(steps / interval)
    limit = hparams["epoch_counter"].limit
    if limit != needed:
        raise ScheduleError(
            f"epoch_counter has {limit} validation intervals of "
            f"valid_interval_steps={interval} steps, which do not cover "
            f"number_of_steps={steps} (needs {needed}: the last one partial)"
            if limit < needed
            else f"epoch_counter has {limit} validation intervals of "
            f"valid_interval_steps={interval} steps, more than the {needed} "
            f"that number_of_steps={steps} needs"
        )
    if hparams.get("optimizer_step_limit") != steps:
        raise ScheduleError(
            f"optimizer_step_limit is {hparams.get('optimizer_step_limit')!r}; "
            f"it must equal number_of_steps={steps} so that training stops "
            "there (the last validation interval may be partial)"
        )
    scheduler = hparams.get("lr_scheduler")
    total = getattr(scheduler, "keywords", {}).get("total_steps")
    if total is not None and total != steps:
        raise ScheduleError(
            f"the lr_scheduler has total_steps={total} but number_of_steps is "
            f"{steps}"
        )


def per_process_batch_size(batch_size, n_processes):
    """Splits the global batch between the processes, as the authors do.

    ``batch_size`` in every yaml is the *global* batch of one optimizer
    step (the paper's 128); under torchrun each process takes an equal
    share and DDP averages the gradients, so the step is the same as one
    process's.

    Arguments
    ---------
    batch_size : int
        The global batch.
    n_processes : int
        The world size.

    Returns
    -------
    int
        The batch of each process.

    Raises
    ------
    ScheduleError
        If the batch does not divide between the processes.

    Example
    -------
    >>> per_process_batch_size(128, 4)
    32
    >>> try:
    ...     per_process_batch_size(128, 3)
    ... except ScheduleError as error:
    ...     print(str(error)[-30:])
    use a multiple of 3 (e.g. 129)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ScheduleError(
            f"batch_size must be an integer, got {batch_size!r}"
        )
    if batch_size < n_processes or batch_size % n_processes:
        nearest = max(n_processes, -(-batch_size // n_processes) * n_processes)
        raise ScheduleError(
            f"batch_size={batch_size} is the global batch and does not "
            f"divide between {n_processes} processes: use a multiple of "
            f"{n_processes} (e.g. {nearest})"
        )
    return batch_size // n_processes


def hparams_changes(old_text, new_text, free_keys=RESUME_FREE_KEYS):
    """Lists the hyperparameters that differ between two resolved yamls.

    Both texts are resolved HyperPyYAML (as ``hyperparams.yaml`` of a run
    folder); the values are compared as written, tags included. A change
    under a key of ``free_keys`` (at any depth) is left out.

    Arguments
    ---------
    old_text : str
        The yaml the run was started with.
    new_text : str
        The yaml of this start.
    free_keys : set of str
        Keys allowed to change.

    Returns
    -------
    list of str
        ``key: old -> new`` lines, dotted keys for nested values.

    Example
    -------
    >>> old = "number_of_steps: 100\\nnum_workers: 4\\nopts:\\n  lr: 0.1\\n"
    >>> new = "number_of_steps: 200\\nnum_workers: 8\\nopts:\\n  lr: 0.1\\n"
    >>> hparams_changes(old, new)
    ['number_of_steps: 100 -> 200']
    """
    loader = _round_trip()
    old = loader.load(old_text)
    new = loader.load(new_text)
    changes = []
    _diff(old, new, [], free_keys, changes)
    return changes


def _diff(old, new, path, free_keys, changes):
    """Appends the differences of two ruamel trees to ``changes``."""
    if any(str(part) in free_keys for part in path):
        return
    if isinstance(old, CommentedMap) and isinstance(new, CommentedMap):
        if _tag(old) != _tag(new):
            changes.append(_line(path, _tag(old), _tag(new)))
            return
        for key in list(old) + [k for k in new if k not in old]:
            if key not in new:
                changes.append(
                    _line([*path, key], _show(old[key]), "(removed)")
                )
            elif key not in old:
                changes.append(_line([*path, key], "(absent)", _show(new[key])))
            else:
                _diff(old[key], new[key], [*path, key], free_keys, changes)
        return
    if isinstance(old, CommentedSeq) and isinstance(new, CommentedSeq):
        if len(old) == len(new) and _tag(old) == _tag(new):
            for index, (a, b) in enumerate(zip(old, new, strict=True)):
                _diff(a, b, [*path, index], free_keys, changes)
            return
    if _show(old) != _show(new):
        changes.append(_line(path, _show(old), _show(new)))


def _tag(node):
    tag = getattr(node, "tag", None)
    return getattr(tag, "value", None)


def _show(node):
    """A value as one short line of yaml."""
    if isinstance(node, TaggedScalar):
        return f"{node.tag.value} {node.value}".strip()
    if isinstance(node, CommentedMap | CommentedSeq):
        text = io.StringIO()
        dumper = _round_trip()
        dumper.default_flow_style = True
        dumper.width = 10**6
        dumper.dump(node, text)
        return " ".join(text.getvalue().split())
    return repr(node) if isinstance(node, str) else str(node)


def _line(path, old, new):
    key = ".".join(str(part) for part in path) or "(top level)"
    return f"{key}: {old} -> {new}"


def resolved_hparams_text(hparams_file, overrides):
    """The yaml a run saves as ``hyperparams.yaml`` (references resolved).

    Arguments
    ---------
    hparams_file : str or os.PathLike
        The recipe's yaml.
    overrides : str or dict
        The command-line overrides.

    Returns
    -------
    str
        The resolved yaml text.

    Example
    -------
    >>> path = getfixture("tmp_path") / "h.yaml"
    >>> _ = path.write_text("a: 1\\nb: !ref <a>\\n")
    >>> print(resolved_hparams_text(path, "a: 2").strip())
    a: 2
    b: 2
    """
    with open(hparams_file, encoding="utf-8") as source:
        return resolve_references(source, overrides).getvalue()


def plain_value(resolved_text, key):
    """A top-level value of a resolved yaml, without building anything.

    Arguments
    ---------
    resolved_text : str
        Resolved HyperPyYAML (see :func:`resolved_hparams_text`).
    key : str
        A top-level key.

    Returns
    -------
    object
        Its value as written (e.g. the ``output_folder`` path).

    Raises
    ------
    KeyError
        If the yaml has no such key.

    Example
    -------
    >>> text = "output_folder: results/1\\nx: !new:dict\\n"
    >>> plain_value(text, "output_folder")
    'results/1'
    """
    document = _round_trip().load(resolved_text)
    if key not in document:
        raise KeyError(f"the yaml has no {key!r}")
    return document[key]


def check_resume(run_folder, new_text, has_checkpoints, allow_changes):
    """Refuses to resume a run with changed hyperparameters.

    Arguments
    ---------
    run_folder : str or os.PathLike
        The run's output folder (with ``hyperparams.yaml`` from its last
        start).
    new_text : str
        The resolved yaml of this start.
    has_checkpoints : bool
        Whether the run has checkpoints to resume from.
    allow_changes : bool
        Continue anyway (the caller rebuilds the schedule).

    Returns
    -------
    list of str
        The changes (empty when nothing changed, or nothing to resume).

    Raises
    ------
    HparamsChangedError
        When hyperparameters changed and ``allow_changes`` is False.

    Example
    -------
    >>> run = getfixture("tmp_path")
    >>> _ = (run / "hyperparams.yaml").write_text("number_of_steps: 100\\n")
    >>> check_resume(run, "number_of_steps: 100\\n", True, False)
    []
    >>> check_resume(run, "number_of_steps: 200\\n", True, True)
    ['number_of_steps: 100 -> 200']
    """
    if not has_checkpoints:
        return []
    saved = pathlib.Path(run_folder) / "hyperparams.yaml"
    if not saved.is_file():
        logger.warning(
            "%s has checkpoints but no hyperparams.yaml: resuming without "
            "checking that the hyperparameters are the same",
            run_folder,
        )
        return []
    changes = hparams_changes(saved.read_text(encoding="utf-8"), new_text)
    if changes and not allow_changes:
        shown = "\n  ".join(changes[:12])
        more = (
            f"\n  ... and {len(changes) - 12} more" if len(changes) > 12 else ""
        )
        raise HparamsChangedError(
            f"{run_folder} holds checkpoints of a run started with other "
            f"hyperparameters ({saved}):\n  {shown}{more}\nResuming would "
            "continue the old run (its learning-rate schedule included) "
            "while hyperparams.yaml claimed the new values. Choose another "
            f"output_folder for a new run, or add {RESUME_FLAG} to continue "
            "from the last checkpoint with the new values (the learning-rate "
            "schedule is rebuilt for them)."
        )
    if changes:
        logger.warning(
            "Resuming %s with changed hyperparameters (%s): %s",
            run_folder,
            RESUME_FLAG,
            "; ".join(changes),
        )
    return changes
