"""The model card (``README.md``) of a pretrained folder.

Authors
 * unipool-sv developers 2026
"""

from unipool_lobes.scoring.score_backend import BACKEND_FILES

__all__ = ["model_card"]


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
    >>> info = {
    ...     "run_folder": "/r",
    ...     "checkpoint": "CKPT+x",
    ...     "step": 10,
    ...     "valid_EER_percent": 5.0,
    ...     "threshold": 0.4,
    ...     "front_end_embedded": False,
    ...     "classifier": False,
    ...     "test_results": None,
    ... }
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


def _tag_of(node):
    """The class or function named by a node's tag, or ``?``."""
    tag = getattr(getattr(node, "tag", None), "value", None)
    return tag.split(":", 1)[-1] if tag else "?"


def _format_optional(value):
    """A float with 4 decimals, or ``not calibrated``."""
    return "not calibrated" if value is None else f"{value:.4f}"
