"""The inference ``hyperparams.yaml`` of a pretrained folder.

The run's yaml is resolved and its ``front_end``, ``embedding_model`` and
``classifier`` definitions kept as written; the export adds the modules, a
``Pretrainer`` loading every checkpoint strictly
(``unipool_lobes.inference.speaker.load_state_dict_strict``), the audio
normalizer, the label encoder, the calibrated threshold and the sample
rate (:func:`pretrained_hparams_yaml`).

Authors
 * unipool-sv developers 2026
"""

import io
import os
import pathlib
import re

import ruamel.yaml
from hyperpyyaml import resolve_references
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "MODULE_KEYS",
    "STRICT_HOOK",
    "pretrained_hparams_yaml",
    "round_trip_yaml",
]


MODULE_KEYS = ("front_end", "embedding_model", "classifier")


STRICT_HOOK = "unipool_lobes.inference.speaker.load_state_dict_strict"


DEFAULT_SAMPLE_RATE = 16000


def pretrained_hparams_yaml(
    run_hparams_text,
    threshold=None,
    training_cwd=None,
    embedded_front_end=False,
    include_classifier=True,
    header="",
    front_end=None,
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
    front_end : ruamel.yaml.comments.CommentedMap, optional
        A definition replacing the run's front-end (the export's portable
        one: :mod:`unipool_lobes.inference.portable`), written as given.

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
    ['    in_features: 16']
    >>> [line for line in yaml_text.splitlines() if "Pretrainer" in line]
    ['pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer']
    """
    loader = round_trip_yaml()
    run = loader.load(resolve_references(run_hparams_text).getvalue())
    for key in ("front_end", "embedding_model"):
        if key not in run:
            raise KeyError(f"the run's hyperparams have no {key!r} definition")
    keys = [key for key in MODULE_KEYS if key in run]
    if not include_classifier and "classifier" in keys:
        keys.remove("classifier")
    definitions = {key: _plain_copy(run[key]) for key in keys}
    _absolute_front_end_paths(definitions["front_end"], training_cwd)
    if front_end is not None:
        definitions["front_end"] = front_end
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


def round_trip_yaml():
    """A ruamel round-trip YAML that writes booleans as True/False.

    Returns
    -------
    ruamel.yaml.YAML
        Indents mappings by 4, never wraps lines.

    Example
    -------
    >>> text = io.StringIO()
    >>> round_trip_yaml().dump({"freeze": True}, text)
    >>> text.getvalue().strip()
    'freeze: True'
    """
    yaml = ruamel.yaml.YAML()
    yaml.indent(mapping=4, sequence=6, offset=4)
    yaml.width = 4096

    def _represent_bool(representer, value):
        return representer.represent_scalar(
            "tag:yaml.org,2002:bool", "True" if value else "False"
        )

    yaml.representer.add_representer(bool, _represent_bool)
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
