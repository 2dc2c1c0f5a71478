"""The ``score`` command of ``unipool-sv``: scores, metrics and plots.

It embeds the utterances of a trial list, scores the trials by cosine
(optionally cohort-normalised), writes ``scores.txt``, ``results.json``,
the plots and, with a score back-end, ``calibrated_scores.txt``, into
``--out`` or :func:`default_score_folder`.

Authors
 * unipool-sv developers 2026
"""

import hashlib
import json
import pathlib

import torch

from unipool_lobes.inference.cli_commands import (
    encode_or_explain,
    load_verifier,
)
from unipool_lobes.inference.cli_gallery import (
    check_gallery_trials,
    gallery_speakers,
    speaker_rows,
)
from unipool_lobes.inference.cli_lists import (
    audio_root_utterances,
    check_trial_utterances,
    manifest_utterances,
)
from unipool_lobes.scoring.metrics import metrics_line, verification_results
from unipool_lobes.scoring.score_files import write_scores
from unipool_lobes.scoring.trial_scoring import cosine_score_trials
from unipool_lobes.scoring.trials import read_trials
from unipool_lobes.utils.safe_io import lock_folder, write_text_atomic

__all__ = [
    "CALIBRATED_SCORES",
    "default_score_folder",
    "run_score",
]


def run_score(args):
    """``unipool-sv score``: scores, metrics and plots of a trial list.

    Arguments
    ---------
    args : argparse.Namespace
        Parsed arguments.
    """
    if args.norm and not args.cohort:
        raise ValueError(f"--norm {args.norm} needs --cohort")
    if args.cohort and not args.norm:
        raise ValueError("--cohort needs --norm (z-norm, t-norm or s-norm)")
    trials_path = pathlib.Path(args.trials)
    if not trials_path.is_file():
        raise FileNotFoundError(f"trial list not found: {trials_path}")
    trials = read_trials(trials_path)
    if args.manifest:
        utterances = manifest_utterances(args.manifest, args.data_root)
        where = args.manifest
    else:
        utterances = audio_root_utterances(trials_path, args.audio_root)
        where = f"--audio-root {args.audio_root}"
    speakers = gallery_speakers(args.gallery)
    if speakers:  # --audio-root: the list's own ids (speakers) dropped
        utterances = check_gallery_trials(
            trials,
            utterances,
            speakers,
            str(trials_path),
            where,
            listed=not args.manifest,
        )
    else:
        check_trial_utterances(trials, utterances, str(trials_path), where)
    needed = (set(trials["enrol"]) - speakers) | set(trials["test"])
    ids = [
        utterance_id for utterance_id in utterances if utterance_id in needed
    ]

    out = pathlib.Path(args.out) if args.out else _default_out(args)
    with lock_folder(out, "score"):
        _score(args, trials, trials_path, utterances, where, ids, out)


def _score(args, trials, trials_path, utterances, where, ids, out):
    """Embeds, scores and writes the results (``out`` is locked)."""
    verifier = load_verifier(args)
    backend = verifier.mods.embedding_model
    with_layers = not args.no_plots and hasattr(backend, "keeping_attention")
    with_layers = with_layers and verifier.onnx_embedder is None  # no ONNX
    encoded = encode_or_explain(
        verifier,
        [utterances[i][0] for i in ids],
        args,
        segments=[utterances[i][1] for i in ids],
        return_layer_weights=with_layers,
    )
    embeddings, layer_weights = encoded if with_layers else (encoded, None)
    gallery = verifier.load_gallery(args.gallery) if args.gallery else None
    table, table_ids, _ = speaker_rows(gallery, trials, embeddings, ids)
    scores = cosine_score_trials(
        table, table_ids, trials["enrol"], trials["test"]
    )
    if args.norm:
        scores = _normalised_scores(
            args, verifier, table, table_ids, trials, scores
        )

    if not bool(torch.isfinite(scores).all()):
        bad = int((~torch.isfinite(scores)).nonzero()[0])
        raise ValueError(
            f"{trials_path}: the score of trial {bad + 1} "
            f"({trials['enrol'][bad]} {trials['test'][bad]}) is not finite"
        )
    results = verification_results(trials["label"], scores)
    results.update(
        model=str(pathlib.Path(args.model).resolve()),
        model_name=getattr(verifier.hparams, "model_name", None),
        trained_on=getattr(verifier.hparams, "corpus_name", None),
        trials=str(trials_path.resolve()),
        utterances=str(pathlib.Path(where).resolve())
        if args.manifest
        else str(pathlib.Path(args.audio_root).resolve()),
        n_utterances=len(ids),
        gallery=str(pathlib.Path(args.gallery).resolve())
        if args.gallery
        else None,
        norm=args.norm,
        top_k=args.top_k if args.norm else None,
        cohort=str(pathlib.Path(args.cohort).resolve())
        if args.cohort
        else None,
    )
    if not args.norm and verifier.threshold is not None:
        results["calibrated_threshold"] = _rates_at(
            trials["label"], scores, verifier.threshold
        )
    calibrated_text = None
    if verifier.score_backend is not None:
        calibrated_text, results["calibrated"] = _calibrated_scores(
            verifier, embeddings, ids, utterances, trials, trials_path, gallery
        )
    out.mkdir(parents=True, exist_ok=True)
    if calibrated_text is not None:
        write_text_atomic(out / CALIBRATED_SCORES, calibrated_text)
    else:  # not left over from a model that had a back-end
        (out / CALIBRATED_SCORES).unlink(missing_ok=True)
    write_scores(
        out / "scores.txt",
        trials["enrol"],
        trials["test"],
        trials["label"],
        scores.tolist(),
    )
    write_text_atomic(
        out / "results.json", json.dumps(results, indent=2) + "\n"
    )
    if not args.no_plots:
        _write_plots(out, trials, scores, layer_weights, backend, trials_path)
    print(
        f"{metrics_line(results)}  ({results['n_trials']} trials, "
        f"{len(ids)} utterances) -> {out}"
    )
    if calibrated_text is not None:
        print(
            f"calibrated (QMF): {metrics_line(results['calibrated'])} -> "
            f"{out / CALIBRATED_SCORES}"
        )


CALIBRATED_SCORES = "calibrated_scores.txt"


def _calibrated_scores(
    verifier, embeddings, ids, utterances, trials, where, gallery=None
):
    """The calibrated-score file's text and the LLRs' metrics."""
    durations = verifier.file_durations(
        [utterances[i][0] for i in ids], [utterances[i][1] for i in ids]
    )
    embeddings, ids, durations = speaker_rows(
        gallery, trials, embeddings, ids, durations, raw=True
    )
    scored = verifier.score_backend.score(
        embeddings, ids, durations, trials["enrol"], trials["test"]
    )
    llr, probability = scored["llr"], scored["probability"]
    if not bool(torch.isfinite(llr).all()):
        bad = int((~torch.isfinite(llr)).nonzero()[0])
        raise ValueError(
            f"{where}: the calibrated LLR of trial {bad + 1} "
            f"({trials['enrol'][bad]} {trials['test'][bad]}) is not finite"
        )
    lines = [
        f"{enrol} {test} {label} {value!r} {chance!r}\n"
        for enrol, test, label, value, chance in zip(
            trials["enrol"],
            trials["test"],
            trials["label"],
            llr.tolist(),
            probability.tolist(),
            strict=True,
        )
    ]
    results = verification_results(trials["label"], llr, llr=True)
    calibration = verifier.score_backend.calibration
    results.update(
        scores="QMF-calibrated log-likelihood ratios (nats)",
        top_k=verifier.score_backend.top_k,
        cohort_size=int(verifier.score_backend.cohort.shape[0]),
        n_calibration_trials=calibration.info.get("n_trials"),
    )
    return "".join(lines), results


def _default_out(args):
    """The default ``score`` folder of the parsed arguments."""
    return default_score_folder(
        args.model,
        args.trials,
        args.manifest or args.audio_root,
        norm=args.norm,
        cohort=args.cohort,
    )


def default_score_folder(model, trials, utterances, norm=None, cohort=None):
    """Where ``score`` writes by default.

    ``<model>/eval/<trials name>[_<norm>]-<hash>``: the hash of the trial
    list's, the utterances' and the cohort's absolute paths keeps apart the
    results of two corpora whose trial lists share a name.

    Arguments
    ---------
    model : str or os.PathLike
        The ``--model`` folder.
    trials : str or os.PathLike
        The trial list.
    utterances : str or os.PathLike
        The manifest or audio root.
    norm : str, optional
        The score normalisation.
    cohort : str or os.PathLike, optional
        The cohort manifest.

    Returns
    -------
    pathlib.Path
        The folder.

    Example
    -------
    >>> a = default_score_folder("m", "/vctk/test_trials.csv", "/vctk/t.csv")
    >>> b = default_score_folder("m", "/libri/test_trials.csv", "/libri/t.csv")
    >>> a.parent == b.parent and a.name.startswith("test_trials-") and a != b
    True
    """
    name = pathlib.Path(trials).stem
    if norm:
        name += f"_{norm}"
    key = "\n".join(
        str(pathlib.Path(path).resolve()) if path else ""
        for path in (trials, utterances, cohort)
    )
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]
    return pathlib.Path(model) / "eval" / f"{name}-{digest}"


def _normalised_scores(args, verifier, embeddings, ids, trials, scores):
    """Cohort-normalised scores (``unipool_lobes.scoring.score_norm``)."""
    from unipool_lobes.scoring.score_norm import ScoreNormalizer

    cohort = manifest_utterances(args.cohort, args.data_root)
    cohort_embeddings = encode_or_explain(
        verifier,
        [path for path, _ in cohort.values()],
        args,
        segments=[segment for _, segment in cohort.values()],
    )
    normalizer = ScoreNormalizer(cohort_embeddings, args.top_k, args.norm)
    return normalizer(
        embeddings, ids, trials["enrol"], trials["test"], raw_scores=scores
    )


def _rates_at(labels, scores, threshold):
    """False-acceptance and false-rejection rates at a threshold."""
    labels = torch.as_tensor(labels).bool()
    accepted = torch.as_tensor(scores) > threshold
    return {
        "value": float(threshold),
        "FAR": float(accepted[~labels].float().mean()),
        "FRR": float((~accepted[labels]).float().mean()),
    }


def _write_plots(out, trials, scores, layer_weights, backend, trials_path):
    """The DET plot and, for UniPool, the layer-significance plot."""
    from unipool_lobes.scoring.plots import plot_det, plot_layer_significance

    plot_det(
        trials["label"],
        scores,
        out / "det.png",
        title=f"DET: {trials_path.name}",
    )
    if layer_weights is not None:
        layers = getattr(backend, "layers", None)
        names = [str(layer) for layer in layers] if layers else None
        plot_layer_significance(
            layer_weights,
            out / "layer_significance.png",
            layer_names=names,
            title=f"Layer significance: {trials_path.name}",
        )
