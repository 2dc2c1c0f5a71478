"""Turns a training run into a pretrained folder for ``from_hparams``.

A run folder of ``recipes/train_speaker_embeddings.py`` holds the resolved
``hyperparams.yaml``, ``save/label_encoder.txt``, ``results.json`` (test
metrics of the best checkpoint) and ``save/CKPT+*/`` checkpoints whose
``CKPT.yaml`` records the validation ``EER`` and ``EER_threshold``. The
export keeps the best of them (lowest validation EER) and writes a folder
laid out as SpeechBrain's models on the Hugging Face hub::

    hyperparams.yaml     front_end / embedding_model / classifier as the run
                         defined them (the SSL model's config inlined, no
                         path), modules, a pretrainer (strict loading), the
                         calibrated threshold and the sample rate
    front_end.ckpt       the SSL model's weights (fine-tuned or frozen)
    embedding_model.ckpt classifier.ckpt
    label_encoder.txt    the training speakers (for ``classify_batch``)
    unipool_speaker.py   ``SpeakerVerifier`` with the unipool_lobes modules
                         it needs, in one file, for SpeechBrain's
                         ``foreign_class`` where unipool-sv is not installed
                         (``unipool_lobes.inference.bundle``)
    [score_backend.pt calibration.json]
                         the scoring back-end (AS-norm cohort and QMF
                         calibration, ``unipool_lobes.scoring.calibration``),
                         copied when the run folder holds both
    export.json          where it came from (run folder's name, checkpoint,
                         metrics) and the size and SHA-256 of each file,
                         checked at load
    README.md            model card (hub front matter, results, snippets)

No file names a path of the training machine, so the folder still loads
after ``cp -r`` to another folder or machine, or an upload to the hub. The
SSL front-end is built from its inline config and ``front_end.ckpt``
(``unipool_lobes.inference.portable``); with ``ssl_from_hub``
(``--ssl-from-hub``) a frozen SSL model named by a hub id stays a hub
reference instead (no ``front_end.ckpt``; downloaded at load). Folders
exported before, whose yaml names a ``source``, still load. The folder is
written to a temporary sibling and renamed into place, so it is never
half-written.

Authors
 * unipool-sv developers 2026
"""

import json
import logging
import os
import pathlib
import shutil

import torch
from hyperpyyaml import resolve_references

from unipool_lobes.inference.bundle import BUNDLE_FILE, write_bundle
from unipool_lobes.inference.loading import EXPORT_INFO
from unipool_lobes.inference.model_card import model_card
from unipool_lobes.inference.portable import (
    FRONT_END_CKPT,
    copy_fine_tuned_state,
    front_end_state,
    portable_front_end,
)
from unipool_lobes.inference.pretrained_yaml import (
    DEFAULT_SAMPLE_RATE,
    MODULE_KEYS,
    STRICT_HOOK,
    pretrained_hparams_yaml,
    round_trip_yaml,
)
from unipool_lobes.inference.run_folder import (
    best_checkpoint,
    is_run_folder,
    run_backend_files,
    training_cwd,
)
from unipool_lobes.scoring.calibration import BACKEND_FILES, ScoreBackend
from unipool_lobes.training.checkpoint_files import (
    CHECKSUMS_KEY,
    check_finite_parameters,
    file_record,
    verify_files,
)
from unipool_lobes.utils.safe_io import (
    disk_full_as_error,
    lock_target,
    make_temporary_folder,
)

# The names of this module before the run-folder reading (``.run_folder``),
# the yaml rewriting (``.pretrained_yaml``) and the model card
# (``.model_card``) moved out, given here for old imports.
__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "MODULE_KEYS",
    "STRICT_HOOK",
    "best_checkpoint",
    "ensure_pretrained",
    "export_pretrained",
    "is_export_folder",
    "is_run_folder",
    "model_card",
    "pretrained_hparams_yaml",
    "run_backend_files",
    "training_cwd",
]

logger = logging.getLogger(__name__)


def export_pretrained(
    run_folder,
    out_folder,
    include_classifier=True,
    overwrite=False,
    ssl_from_hub=False,
):
    """Exports the best checkpoint of a training run as a pretrained folder.

    Arguments
    ---------
    run_folder : str or os.PathLike
        The training run (``hyperparams.yaml``, ``save/CKPT+*``).
    out_folder : str or os.PathLike
        The pretrained folder to write.
    include_classifier : bool
        Also export the speaker classifier and the label encoder.
    overwrite : bool
        Replace ``out_folder`` if it is an earlier export (atomically);
        otherwise an existing ``out_folder`` is an error. A folder that is
        not an export (no ``export.json``), the run itself or a folder
        holding the run is never replaced.
    ssl_from_hub : bool
        Keep a frozen SSL model's hub id (``source:``) instead of embedding
        its config and weights (``front_end.ckpt``); refused for a local
        or fine-tuned SSL model.

    Returns
    -------
    pathlib.Path
        The pretrained folder.

    Raises
    ------
    FileNotFoundError
        If the run folder, its yaml or its checkpoint files are missing.
    FileExistsError
        If ``out_folder`` exists and ``overwrite`` is False, or it is not an
        earlier export.
    ValueError
        If ``out_folder`` is the run or holds it, or ``ssl_from_hub`` is
        given for a local or fine-tuned SSL model.
    unipool_lobes.training.checkpoints.CheckpointCorruptError
        If a checkpoint file does not match its checksum or holds
        non-finite parameters.
    unipool_lobes.utils.safe_io.FolderBusyError
        If another export writes ``out_folder``.

    Example
    -------
    >>> export_pretrained("no/such/run", "out")
    Traceback (most recent call last):
    ...
    FileNotFoundError: run folder not found: no/such/run
    """
    run = pathlib.Path(run_folder)
    out = pathlib.Path(out_folder).absolute()
    if not run.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_folder}")
    hparams_path = run / "hyperparams.yaml"
    if not hparams_path.is_file():
        raise FileNotFoundError(f"no hyperparams.yaml in the run {run}")
    _refuse_unsafe_target(run, out)
    with lock_target(out, "export"):
        _remove_stale_staging(out)
        if out.exists():
            if not overwrite:
                raise FileExistsError(
                    f"{out} exists; pass overwrite=True (--overwrite) to "
                    "replace it"
                )
            if not is_export_folder(out):
                raise FileExistsError(
                    f"{out} exists and is not a unipool-sv export (no "
                    f"{EXPORT_INFO}, or it holds a training run): refusing "
                    "to replace it; choose another output folder"
                )
        return _export(run, out, include_classifier, hparams_path, ssl_from_hub)


def _export(run, out, include_classifier, hparams_path, ssl_from_hub):
    """Writes the export of ``run`` into ``out`` (the caller holds the
    lock)."""
    checkpoint, meta = best_checkpoint(run)
    if not (checkpoint / "embedding_model.ckpt").is_file():
        raise FileNotFoundError(f"no embedding_model.ckpt in {checkpoint}")
    verify_files(checkpoint, meta.get(CHECKSUMS_KEY) or {})
    run_text = hparams_path.read_text(encoding="utf-8")
    run_hparams = round_trip_yaml().load(
        resolve_references(run_text).getvalue()
    )
    include_classifier = (
        include_classifier
        and "classifier" in run_hparams
        and (checkpoint / "classifier.ckpt").is_file()
    )
    fine_tuned = (checkpoint / FRONT_END_CKPT).is_file()
    results = _read_json(run / "results.json")
    info = {
        # The name only: no path of the training machine in the folder.
        "run_folder": run.resolve().name,
        "checkpoint": checkpoint.name,
        "step": meta.get("step"),
        "valid_EER_percent": float(meta["EER"]),
        "threshold": _optional_float(meta.get("EER_threshold")),
        "front_end_embedded": fine_tuned,
        "front_end_fine_tuned": fine_tuned,
        "classifier": include_classifier,
        "test_results": _names_only(results),
    }
    cwd = training_cwd(run, run_hparams.get("output_folder", ""))
    yaml_options = {
        "threshold": info["threshold"],
        "training_cwd": cwd,
        "include_classifier": include_classifier,
        "header": _yaml_header(info),
    }
    yaml_text = pretrained_hparams_yaml(
        run_text, embedded_front_end=fine_tuned, **yaml_options
    )
    front_end = round_trip_yaml().load(yaml_text)["front_end"]
    portable, embedded, ssl_record = portable_front_end(
        front_end, fine_tuned, ssl_from_hub
    )
    info.update(ssl_record, front_end_embedded=embedded)
    frozen_state = None
    if embedded and not fine_tuned:
        frozen_state = front_end_state(front_end)
    if portable is not front_end:
        yaml_text = pretrained_hparams_yaml(
            run_text,
            embedded_front_end=embedded,
            front_end=portable,
            **yaml_options,
        )
    files = ["embedding_model.ckpt"]
    if include_classifier:
        files.append("classifier.ckpt")
    if fine_tuned:
        files.append(FRONT_END_CKPT)
    for name in files:
        check_finite_parameters(checkpoint / name)
    backend_files = run_backend_files(run)
    if backend_files:
        ScoreBackend.load(run)  # refuse a corrupt or mismatched back-end

    staging = make_temporary_folder(out.parent, f".{out.name}.tmp-")
    try:
        for name in files:
            with disk_full_as_error(staging / name, "exported model file"):
                if name == FRONT_END_CKPT:
                    copy_fine_tuned_state(checkpoint / name, staging / name)
                else:
                    shutil.copyfile(checkpoint / name, staging / name)
        if frozen_state is not None:
            path = staging / FRONT_END_CKPT
            with disk_full_as_error(path, "exported model file"):
                torch.save(frozen_state, path)
            files.append(FRONT_END_CKPT)
        label_encoder = run / "save" / "label_encoder.txt"
        if include_classifier and label_encoder.is_file():
            with disk_full_as_error(staging / "label_encoder.txt"):
                shutil.copyfile(label_encoder, staging / "label_encoder.txt")
            files.append("label_encoder.txt")
        for name in backend_files:
            with disk_full_as_error(staging / name, "score back-end file"):
                shutil.copyfile(run / name, staging / name)
            files.append(name)
        with disk_full_as_error(staging / BUNDLE_FILE, "exported file"):
            write_bundle(staging, yaml_text)
        files.append(BUNDLE_FILE)
        # Checked again at every load: a damaged copy is never used.
        info["files"] = {name: file_record(staging / name) for name in files}
        _write_new_file(staging / "hyperparams.yaml", yaml_text)
        _write_new_file(
            staging / EXPORT_INFO, json.dumps(info, indent=2) + "\n"
        )
        _write_new_file(
            staging / "README.md", model_card(info, run_hparams, out.name)
        )
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _same_backend(run, info):
    """Whether an export's back-end files are the run's current ones."""
    records = (info or {}).get("files") or {}
    exported = {
        name: records[name] for name in BACKEND_FILES if name in records
    }
    current = {name: file_record(run / name) for name in run_backend_files(run)}
    return exported == current


def is_export_folder(folder):
    """Whether ``folder`` is a pretrained folder written by the export.

    Arguments
    ---------
    folder : str or os.PathLike
        Any folder.

    Returns
    -------
    bool
        True when it holds ``export.json`` and ``hyperparams.yaml`` and is
        not a training run.

    Example
    -------
    >>> is_export_folder(getfixture("tmp_path"))
    False
    """
    folder = pathlib.Path(folder)
    return (
        (folder / EXPORT_INFO).is_file()
        and (folder / "hyperparams.yaml").is_file()
        and not is_run_folder(folder)
        and not (folder / "save").exists()
    )


def _refuse_unsafe_target(run, out):
    """The export may not replace the run or a folder holding it."""
    run = run.resolve()
    target = out.resolve()
    if target == run or run.is_relative_to(target):
        raise ValueError(
            f"refusing to export into {out}: it is (or holds) the training "
            f"run {run}, which the export would replace; choose another "
            "output folder"
        )
    if target.is_relative_to(run / "save"):
        raise ValueError(
            f"refusing to export into {out}: it is inside the run's "
            "checkpoint folder; choose another output folder"
        )


def _remove_stale_staging(out):
    """Removes staging folders of exports to ``out`` that were killed."""
    for pattern in (f".{out.name}.tmp-*", f".{out.name}.old-*"):
        for stale in out.parent.glob(pattern):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
                logger.info("Removed %s, left by an interrupted export", stale)


def _write_new_file(path, text):
    """Writes a text file of the staging folder, naming it on a full disk."""
    with disk_full_as_error(path, "exported file"):
        path.write_text(text, encoding="utf-8")


def ensure_pretrained(model_folder):
    """Returns a pretrained folder for a pretrained or a run folder.

    A run folder is exported into ``<run>/pretrained`` unless that folder
    already holds the run's current best checkpoint and score back-end.

    Arguments
    ---------
    model_folder : str or os.PathLike
        A pretrained folder (``hyperparams.yaml`` + ``.ckpt`` files) or a
        training run folder.

    Returns
    -------
    pathlib.Path
        The pretrained folder.

    Raises
    ------
    FileNotFoundError
        If ``model_folder`` does not exist or is neither kind of folder.

    Example
    -------
    >>> ensure_pretrained("no/such/model")
    Traceback (most recent call last):
    ...
    FileNotFoundError: model folder not found: no/such/model
    """
    folder = pathlib.Path(model_folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {model_folder}")
    if not is_run_folder(folder):
        if not (folder / "hyperparams.yaml").is_file():
            raise FileNotFoundError(
                f"{model_folder} is neither a pretrained folder (no "
                "hyperparams.yaml) nor a training run (no save/CKPT+*)"
            )
        return folder
    exported = folder / "pretrained"
    checkpoint, _ = best_checkpoint(folder)
    info = _read_json(exported / EXPORT_INFO)
    if (
        info is not None
        and info.get("checkpoint") == checkpoint.name
        and _same_backend(folder, info)
    ):
        return exported
    return export_pretrained(folder, exported, overwrite=True)


def _yaml_header(info):
    """Comment lines opening the exported yaml."""
    return (
        "# " + "#" * 76 + "\n"
        "# Pretrained speaker-verification model exported by unipool-sv\n"
        f"# Run: {info['run_folder']}\n"
        f"# Checkpoint: {info['checkpoint']} (step {info['step']}, "
        f"validation EER {info['valid_EER_percent']:.4f} %)\n"
        "# threshold: cosine score at the validation EER\n"
        "# Load: unipool_lobes.inference.speaker.SpeakerVerifier"
        ".from_hparams(\n"
        "#     source=<this folder>), or without unipool-sv:\n"
        "# speechbrain.inference.interfaces.foreign_class(\n"
        f'#     source=<this folder>, pymodule_file="{BUNDLE_FILE}",\n'
        '#     classname="SpeakerVerifier")\n'
        "# " + "#" * 76 + "\n\n"
    )


def _move_into_place(staging, out):
    """Renames ``staging`` to ``out``, replacing an existing ``out``."""
    if not out.exists():
        os.rename(staging, out)
        return
    old = make_temporary_folder(out.parent, f".{out.name}.old-")
    os.rmdir(old)
    os.rename(out, old)
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _read_json(path):
    """Reads a JSON file, or returns None when it does not exist."""
    path = pathlib.Path(path)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _names_only(value):
    """``value`` with every absolute path string reduced to its name."""
    if isinstance(value, dict):
        return {key: _names_only(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_names_only(item) for item in value]
    if isinstance(value, str) and os.path.isabs(value):
        return os.path.basename(os.path.normpath(value))
    return value


def _optional_float(value):
    """``float(value)``, or None for None."""
    return None if value is None else float(value)
