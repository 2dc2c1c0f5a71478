"""Turns a training run into a pretrained folder for ``from_hparams``.

A run folder of ``recipes/train_speaker_embeddings.py`` holds the resolved
``hyperparams.yaml``, ``save/label_encoder.txt``, ``results.json`` (test
metrics of the best checkpoint) and ``save/CKPT+*/`` checkpoints whose
``CKPT.yaml`` records the validation ``EER`` and ``EER_threshold``. The
export keeps the best of them (lowest validation EER) and writes::

    hyperparams.yaml     front_end / embedding_model / classifier as the run
                         defined them, modules, a pretrainer (strict loading),
                         the calibrated threshold and the sample rate
    embedding_model.ckpt classifier.ckpt [front_end.ckpt]
    label_encoder.txt    the training speakers (for ``classify_batch``)
    [score_backend.pt calibration.json]
                         the scoring back-end (AS-norm cohort and QMF
                         calibration, ``unipool_lobes.scoring.calibration``),
                         copied when the run folder holds both
    export.json          where it came from (run, checkpoint, metrics) and
                         the size and SHA-256 of each file, checked at load
    README.md            model card with a runnable snippet

A frozen SSL model is referenced by its hub id or absolute local folder;
a fine-tuned one is embedded as ``front_end.ckpt`` (its architecture is
still read from the source's config). The folder is written to a
temporary sibling and renamed into place, so it is never half-written.

Authors
 * unipool-sv developers 2026
"""

import io
import json
import logging
import os
import pathlib
import re
import shutil

import ruamel.yaml
from hyperpyyaml import resolve_references
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar

from unipool_lobes.inference.speaker import EXPORT_INFO
from unipool_lobes.scoring.calibration import BACKEND_FILES, ScoreBackend
from unipool_lobes.training.checkpoints import (
    CHECKSUMS_KEY,
    check_finite_parameters,
    complete_checkpoints,
    file_record,
    incomplete_checkpoints,
    verify_files,
)
from unipool_lobes.utils.safe_io import (
    disk_full_as_error,
    lock_target,
    make_temporary_folder,
)

logger = logging.getLogger(__name__)

MODULE_KEYS = ("front_end", "embedding_model", "classifier")
STRICT_HOOK = "unipool_lobes.inference.speaker.load_state_dict_strict"
DEFAULT_SAMPLE_RATE = 16000


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


def pretrained_hparams_yaml(
    run_hparams_text,
    threshold=None,
    training_cwd=None,
    embedded_front_end=False,
    include_classifier=True,
    header="",
):
    """Builds the inference ``hyperparams.yaml`` from a run's yaml text.

    The run's yaml is resolved (``hyperpyyaml.resolve_references``) and its
    ``front_end``, ``embedding_model`` and ``classifier`` definitions are
    kept as written, whatever backend they name. The front-end is set to
    ``freeze: True`` (inference) and its ``source``/``save_path``, if
    relative, are made absolute against ``training_cwd``.

    Arguments
    ---------
    run_hparams_text : str
        The run's yaml.
    threshold : float, optional
        The calibrated cosine threshold, stored as ``threshold``.
    training_cwd : str or os.PathLike, optional
        The folder training ran from (relative paths of the run's yaml are
        relative to it).
    embedded_front_end : bool
        Whether ``front_end.ckpt`` is part of the folder (fine-tuned SSL).
    include_classifier : bool
        Keep the classifier (with its ``classifier.ckpt``).
    header : str
        Comment lines put at the top.

    Returns
    -------
    str
        The yaml text.

    Raises
    ------
    KeyError
        If the run's yaml lacks ``front_end`` or ``embedding_model``.

    Example
    -------
    >>> text = '''
    ... hidden: 16
    ... front_end: !new:torch.nn.Identity
    ... embedding_model: !new:torch.nn.Linear
    ...     in_features: !ref <hidden>
    ...     out_features: 4
    ... '''
    >>> yaml_text = pretrained_hparams_yaml(text, threshold=0.5)
    >>> [line for line in yaml_text.splitlines() if "in_f" in line]
    ['  in_features: 16']
    >>> [line for line in yaml_text.splitlines() if "Pretrainer" in line]
    ['pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer']
    """
    loader = _round_trip_yaml()
    run = loader.load(resolve_references(run_hparams_text).getvalue())
    for key in ("front_end", "embedding_model"):
        if key not in run:
            raise KeyError(f"the run's hyperparams have no {key!r} definition")
    keys = [key for key in MODULE_KEYS if key in run]
    if not include_classifier and "classifier" in keys:
        keys.remove("classifier")
    definitions = {key: _plain_copy(run[key]) for key in keys}
    _absolute_front_end_paths(definitions["front_end"], training_cwd)
    if isinstance(definitions["front_end"], CommentedMap) and (
        "freeze" in definitions["front_end"]
    ):
        definitions["front_end"]["freeze"] = True

    out = CommentedMap()
    out["sample_rate"] = int(run.get("sample_rate", DEFAULT_SAMPLE_RATE))
    out["threshold"] = None if threshold is None else float(threshold)
    for key in ("model_name", "corpus_name"):
        if key in run:
            out[key] = run[key]
    for key in keys:
        out[key] = definitions[key]
    out["audio_normalizer"] = _tagged_map(
        "!new:speechbrain.dataio.preprocess.AudioNormalizer",
        {"sample_rate": out["sample_rate"], "mix": "avg-to-mono"},
    )
    out["label_encoder"] = TaggedScalar(
        value="", tag="!new:speechbrain.dataio.encoder.CategoricalEncoder"
    )
    out["modules"] = CommentedMap((key, _ref(key)) for key in keys)
    loadables = [key for key in keys if key != "front_end"]
    if embedded_front_end:
        loadables.insert(0, "front_end")
    # Named once and referenced: the hook's path does not fit a yaml line
    # under ``custom_hooks`` (yamllint's 80 columns).
    out["load_strict"] = TaggedScalar(value="", tag=f"!name:{STRICT_HOOK}")
    out["pretrainer"] = _tagged_map(
        "!new:speechbrain.utils.parameter_transfer.Pretrainer",
        {
            "loadables": CommentedMap((key, _ref(key)) for key in loadables),
            "custom_hooks": CommentedMap(
                (key, _ref("load_strict")) for key in loadables
            ),
        },
    )
    text = io.StringIO()
    loader.dump(out, text)
    # A blank line between top-level entries, as in the recipes' yamls.
    body = re.sub(r"\n(?=\S)", "\n\n", text.getvalue().rstrip("\n"))
    return header + body + "\n"


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


def export_pretrained(
    run_folder, out_folder, include_classifier=True, overwrite=False
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
        If ``out_folder`` is the run or holds it.
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
        return _export(run, out, include_classifier, hparams_path)


def _export(run, out, include_classifier, hparams_path):
    """Writes the export of ``run`` into ``out`` (the caller holds the
    lock)."""
    checkpoint, meta = best_checkpoint(run)
    if not (checkpoint / "embedding_model.ckpt").is_file():
        raise FileNotFoundError(f"no embedding_model.ckpt in {checkpoint}")
    verify_files(checkpoint, meta.get(CHECKSUMS_KEY) or {})
    run_text = hparams_path.read_text(encoding="utf-8")
    run_hparams = _round_trip_yaml().load(
        resolve_references(run_text).getvalue()
    )
    include_classifier = (
        include_classifier
        and "classifier" in run_hparams
        and (checkpoint / "classifier.ckpt").is_file()
    )
    embedded_front_end = (checkpoint / "front_end.ckpt").is_file()
    results = _read_json(run / "results.json")
    info = {
        "run_folder": str(run.resolve()),
        "checkpoint": checkpoint.name,
        "step": meta.get("step"),
        "valid_EER_percent": float(meta["EER"]),
        "threshold": _optional_float(meta.get("EER_threshold")),
        "front_end_embedded": embedded_front_end,
        "classifier": include_classifier,
        "test_results": results,
    }
    cwd = training_cwd(run, run_hparams.get("output_folder", ""))
    yaml_text = pretrained_hparams_yaml(
        run_text,
        threshold=info["threshold"],
        training_cwd=cwd,
        embedded_front_end=embedded_front_end,
        include_classifier=include_classifier,
        header=_yaml_header(info),
    )
    front_end = _round_trip_yaml().load(yaml_text)["front_end"]
    if isinstance(front_end, CommentedMap):
        info["ssl_source"] = front_end.get("source")
    files = ["embedding_model.ckpt"]
    if include_classifier:
        files.append("classifier.ckpt")
    if embedded_front_end:
        files.append("front_end.ckpt")
    for name in files:
        check_finite_parameters(checkpoint / name)
    backend_files = run_backend_files(run)
    if backend_files:
        ScoreBackend.load(run)  # refuse a corrupt or mismatched back-end

    staging = make_temporary_folder(out.parent, f".{out.name}.tmp-")
    try:
        for name in files:
            with disk_full_as_error(staging / name, "exported model file"):
                shutil.copyfile(checkpoint / name, staging / name)
        label_encoder = run / "save" / "label_encoder.txt"
        if include_classifier and label_encoder.is_file():
            with disk_full_as_error(staging / "label_encoder.txt"):
                shutil.copyfile(label_encoder, staging / "label_encoder.txt")
            files.append("label_encoder.txt")
        for name in backend_files:
            with disk_full_as_error(staging / name, "score back-end file"):
                shutil.copyfile(run / name, staging / name)
            files.append(name)
        # Checked again at every load: a damaged copy is never used.
        info["files"] = {name: file_record(staging / name) for name in files}
        _write_new_file(staging / "hyperparams.yaml", yaml_text)
        _write_new_file(
            staging / EXPORT_INFO, json.dumps(info, indent=2) + "\n"
        )
        _write_new_file(
            staging / "README.md", model_card(info, run_hparams, out)
        )
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


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


def model_card(info, run_hparams, folder):
    """Writes the model card (``README.md``) of a pretrained folder.

    Arguments
    ---------
    info : dict
        The export record (see ``export.json``).
    run_hparams : dict
        The run's resolved hyperparameters.
    folder : str or os.PathLike
        The final location of the pretrained folder (used in the snippet).

    Returns
    -------
    str
        The markdown text.

    Example
    -------
    >>> info = {"run_folder": "/r", "checkpoint": "CKPT+x", "step": 10,
    ...         "valid_EER_percent": 5.0, "threshold": 0.4,
    ...         "front_end_embedded": False, "classifier": False,
    ...         "test_results": None}
    >>> card = model_card(info, {"corpus_name": "VCTK"}, "/models/m")
    >>> "SpeakerVerifier.from_hparams" in card
    True
    """
    get = run_hparams.get
    front_end = _tag_of(get("front_end"))
    backend = _tag_of(get("embedding_model"))
    source = info.get("ssl_source")
    ssl_mode = (
        "fine-tuned (weights embedded in front_end.ckpt)"
        if info["front_end_embedded"]
        else "frozen (weights read from the source)"
        if source
        else "front-end built from the yaml"
    )
    results = info.get("test_results") or {}
    trials = results.get("trials", get("test_trials", "?"))
    lines = [
        f"# {get('model_name', 'speaker')} speaker-verification model "
        f"({get('corpus_name', 'unknown corpus')})",
        "",
        "Exported by unipool-sv from a SpeechBrain training run. Embeddings",
        "are compared by cosine similarity; the decision threshold is the",
        "EER threshold on the validation trials.",
        "",
        "| | |",
        "|---|---|",
        f"| backend | `{backend}` |",
        f"| front-end | `{front_end}` |",
        f"| pretrained model | `{source}`, {ssl_mode} |"
        if source
        else f"| pretrained model | none ({ssl_mode}) |",
        f"| training data | {get('corpus_name', '?')}: "
        f"`{get('train_annotation', '?')}`, "
        f"{get('out_n_neurons', '?')} speakers |",
        f"| training steps | {info.get('step')} (seed {get('seed', '?')}) |",
        f"| run | `{info['run_folder']}` ({info['checkpoint']}) |",
        f"| validation EER | {info['valid_EER_percent']:.2f} % |",
        f"| threshold | {_format_optional(info['threshold'])} |",
        "",
        "## Test results",
        "",
    ]
    if results:
        lines += [
            f"Measured on `{trials}` ({results.get('n_trials')} trials) by",
            "the training run (`results.json`):",
            "",
            "| EER (%) | normalised minDCF (p_target 0.01) | unnormalised "
            "min C_det (p_target 0.01; SpeechBrain's `minDCF`) |",
            "|---|---|---|",
            f"| {results['EER_percent']:.2f} | "
            f"{results['norm_minDCF_p0.01']:.4f} | "
            f"{results['min_Cdet_p0.01']:.6f} |",
        ]
    else:
        lines.append("Not measured (the run has no results.json).")
    if set(BACKEND_FILES) <= set(info.get("files") or {}):
        lines += [
            "",
            "## Score back-end",
            "",
            "`score_backend.pt` (the training cohort's mean and speaker-mean",
            "cohort) and `calibration.json` (QMF logistic regression) give",
            "calibrated log-likelihood ratios: `unipool-sv score` writes",
            "`calibrated_scores.txt`, and `verifier.calibrated_files(a, b)`",
            "returns the LLR and the target probability of a pair.",
        ]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "import torch",
        "from unipool_lobes.inference.speaker import SpeakerVerifier",
        "",
        f"verifier = SpeakerVerifier.from_hparams(source={str(folder)!r})",
        "waveforms = torch.randn(2, 16000)  # two 1 s signals at 16 kHz",
        "score, same = verifier.verify_batch(waveforms[:1], waveforms[1:])",
        "print(f'score {float(score):.4f} same speaker: {bool(same)}')",
        "embeddings = verifier.encode_batch(waveforms)  # [2, 1, E]",
        "print(tuple(embeddings.shape))",
        "```",
        "",
        "Audio files (any sample rate, any number of channels):",
        "",
        "```",
        f"unipool-sv verify a.wav b.wav --model {folder}",
        f"unipool-sv score --model {folder} --trials test_trials.csv "
        "--manifest test.csv",
        "```",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ helpers
def _round_trip_yaml():
    """A ruamel round-trip YAML that writes booleans as True/False."""
    yaml = ruamel.yaml.YAML()
    yaml.indent(mapping=4, sequence=6, offset=4)
    yaml.width = 4096

    def represent_bool(representer, value):
        return representer.represent_scalar(
            "tag:yaml.org,2002:bool", "True" if value else "False"
        )

    yaml.representer.add_representer(bool, represent_bool)
    return yaml


def _plain_copy(node):
    """Copies a ruamel node tree, keeping tags and dropping comments."""
    if isinstance(node, CommentedMap):
        copy = CommentedMap((key, _plain_copy(v)) for key, v in node.items())
        if node.tag.value:
            copy.yaml_set_ctag(node.tag)
        return copy
    if isinstance(node, CommentedSeq):
        copy = CommentedSeq(_plain_copy(value) for value in node)
        if not any(isinstance(v, CommentedMap | CommentedSeq) for v in copy):
            copy.fa.set_flow_style()
        if node.tag.value:
            copy.yaml_set_ctag(node.tag)
        return copy
    return node


def _tagged_map(tag, content):
    """A mapping node with a HyperPyYAML tag such as ``!new:module.Class``."""
    node = CommentedMap(content)
    node.yaml_set_ctag(ruamel.yaml.tag.Tag(suffix=tag))
    return node


def _ref(key):
    """A HyperPyYAML reference ``!ref <key>``."""
    return TaggedScalar(value=f"<{key}>", tag="!ref")


def _tag_of(node):
    """The class or function named by a node's tag, or ``?``."""
    tag = getattr(getattr(node, "tag", None), "value", None)
    return tag.split(":", 1)[-1] if tag else "?"


def _absolute_front_end_paths(front_end, cwd):
    """Makes a relative local ``source``/``save_path`` absolute (in place)."""
    if not isinstance(front_end, CommentedMap):
        return
    base = pathlib.Path(cwd) if cwd is not None else pathlib.Path.cwd()
    source = front_end.get("source")
    if isinstance(source, str) and not os.path.isabs(source):
        candidate = base / os.path.expanduser(source)
        if candidate.exists():
            front_end["source"] = str(candidate.resolve())
    save_path = front_end.get("save_path")
    if isinstance(save_path, str) and not os.path.isabs(save_path):
        front_end["save_path"] = str((base / save_path).resolve())


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
        "#     source=<this folder>)\n"
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


def _optional_float(value):
    """``float(value)``, or None for None."""
    return None if value is None else float(value)


def _format_optional(value):
    """A float with 4 decimals, or ``not calibrated``."""
    return "not calibrated" if value is None else f"{value:.4f}"
