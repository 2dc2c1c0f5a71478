"""The gallery commands of ``unipool-sv``: enroll, identify, verify, score.

::

    unipool-sv enroll --model M --gallery G.safetensors --speaker NAME a.wav
    unipool-sv identify --model M --gallery G x.wav [y.wav] [--top-k 5] [--json]
    unipool-sv verify --model M --gallery G --speaker NAME x.wav
    unipool-sv score --model M --trials T --manifest test.csv --gallery G

``enroll`` adds utterances to a speaker (new or enrolled) of a gallery
file (:mod:`unipool_lobes.inference.gallery`); the gallery is written only
after every file is embedded, atomically, so an error never loses what was
enrolled. ``identify`` prints the top-k speakers of each file by cosine
against their mean unit embeddings (with the calibrated LLR when the model
folder has a score back-end), ``unknown`` when the best cosine is not above
the threshold. In ``score``, a trial whose enrol side names a speaker of
``--gallery`` is scored against that speaker model (multi-utterance
enrolment); the other enrol ids are utterances, as without a gallery.

Authors
 * unipool-sv developers 2026
"""

import json
import os

import torch

from unipool_lobes.inference.cli_commands import (
    encode_or_explain,
    load_verifier,
    run_verify,
)
from unipool_lobes.inference.cli_lists import TrialError, read_file_list
from unipool_lobes.inference.gallery import (
    GalleryError,
    SpeakerGallery,
    check_speaker_name,
)

__all__ = [
    "add_gallery_commands",
    "add_score_gallery_option",
    "add_verify_gallery_options",
    "check_gallery_trials",
    "gallery_speakers",
    "run_enroll",
    "run_identify",
    "run_verify_command",
    "speaker_rows",
]


def add_gallery_commands(commands, model_options, positive_int, finite_float):
    """Adds the ``enroll`` and ``identify`` commands to the parser.

    Arguments
    ---------
    commands : argparse._SubParsersAction
        The subcommands of ``unipool-sv``.
    model_options : callable
        Adds the shared model options to a parser.
    positive_int : callable
        The ``argparse`` type of an integer >= 1.
    finite_float : callable
        The ``argparse`` type of a finite float.

    Example
    -------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_gallery_commands(
    ...     parser.add_subparsers(dest="command"), lambda p: None, int, float
    ... )
    >>> args = parser.parse_args(
    ...     ["enroll", "--gallery", "G", "--speaker", "ann", "a.wav"]
    ... )
    >>> args.speaker, args.audio
    ('ann', ['a.wav'])
    """
    enroll = commands.add_parser(
        "enroll",
        help="enrol a speaker from audio files into a gallery (adds to an "
        "enrolled one)",
    )
    enroll.add_argument("audio", nargs="*", help="the speaker's audio files")
    enroll.add_argument(
        "--list",
        dest="file_list",
        help="also the files of a list ('path' or 'id<TAB>path' per line)",
    )
    enroll.add_argument("--speaker", required=True, help="the speaker name")
    enroll.add_argument(
        "--gallery",
        required=True,
        help="the gallery file (G.safetensors; created if missing)",
    )
    model_options(enroll)

    identify = commands.add_parser(
        "identify", help="find the enrolled speakers of audio files"
    )
    identify.add_argument("audio", nargs="*", help="the test files")
    identify.add_argument(
        "--list", dest="file_list", help="also the files of a list"
    )
    identify.add_argument("--gallery", required=True, help="the gallery file")
    identify.add_argument(
        "--top-k",
        type=positive_int,
        default=5,
        help="candidates printed per file (default 5)",
    )
    identify.add_argument(
        "--threshold",
        type=finite_float,
        help="cosine below which the answer is 'unknown' (default: the "
        "model's calibrated threshold)",
    )
    identify.add_argument(
        "--json", action="store_true", help="print the results as JSON"
    )
    model_options(identify)


def add_verify_gallery_options(verify):
    """Adds ``--gallery`` and ``--speaker`` to ``verify``.

    Arguments
    ---------
    verify : argparse.ArgumentParser
        The ``verify`` parser.

    Example
    -------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_verify_gallery_options(parser)
    >>> parser.parse_args(["--gallery", "G", "--speaker", "ann"]).speaker
    'ann'
    """
    verify.add_argument(
        "--gallery",
        help="verify one audio file against --speaker of this gallery",
    )
    verify.add_argument("--speaker", help="an enrolled speaker of --gallery")


def add_score_gallery_option(score):
    """Adds ``--gallery`` to ``score``.

    Arguments
    ---------
    score : argparse.ArgumentParser
        The ``score`` parser.

    Example
    -------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_score_gallery_option(parser)
    >>> parser.parse_args(["--gallery", "G"]).gallery
    'G'
    """
    score.add_argument(
        "--gallery",
        help="a gallery file: trials whose enrol side names one of its "
        "speakers are scored against that speaker model (the mean of its "
        "enrolled utterances' unit embeddings); other enrol ids are "
        "utterances",
    )


def run_enroll(args):
    """``unipool-sv enroll``: adds a speaker's files to a gallery.

    Arguments
    ---------
    args : argparse.Namespace
        Parsed arguments.
    """
    check_speaker_name(args.speaker)
    paths = _audio_paths(args)
    if not paths:
        raise ValueError(
            f"{args.gallery}: no audio files to enrol for speaker "
            f"{args.speaker!r}"
        )
    verifier = load_verifier(args)
    verifier.check_enrolment(args.gallery, args.speaker, paths)
    embeddings = encode_or_explain(verifier, paths, args)
    durations = verifier.file_durations(paths)
    gallery = verifier.enroll_embeddings(
        args.gallery, args.speaker, embeddings, durations
    )
    row = gallery.row_of(args.speaker)
    print(
        f"enrolled {len(paths)} file(s) for {args.speaker!r}: "
        f"{int(gallery.counts[row])} utterance(s), "
        f"{float(gallery.durations[row]):.1f} s in all; {args.gallery} "
        f"holds {len(gallery)} speaker(s)"
    )


def run_identify(args):
    """``unipool-sv identify``: prints the top-k speakers of each file.

    Arguments
    ---------
    args : argparse.Namespace
        Parsed arguments.
    """
    paths = _audio_paths(args)
    if not paths:
        raise ValueError("identify needs audio files (or --list)")
    verifier = load_verifier(args)
    gallery = verifier.load_gallery(args.gallery)
    if not len(gallery):
        raise GalleryError(f"{args.gallery}: the gallery holds no speaker")
    embeddings = encode_or_explain(verifier, paths, args)
    results = verifier.identify_embeddings(
        gallery,
        embeddings,
        verifier.file_durations(paths),
        top_k=args.top_k,
        threshold=args.threshold,
    )
    for path, result in zip(paths, results, strict=True):
        result["file"] = path
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for result in results:
        threshold = result["threshold"]
        limit = "" if threshold is None else f" (threshold {threshold:.6f})"
        print(f"{result['file']}: {result['speaker']}{limit}")
        for rank, candidate in enumerate(result["candidates"], 1):
            line = (
                f"  {rank}. {candidate['speaker']}  score "
                f"{candidate['score']:.6f}"
            )
            if candidate["llr"] is not None:
                line += (
                    f"  llr {candidate['llr']:.4f}  probability "
                    f"{candidate['probability']:.4f}"
                )
            print(line)


def run_verify_command(args):
    """``unipool-sv verify``: two files, or one against a gallery speaker.

    Arguments
    ---------
    args : argparse.Namespace
        Parsed arguments.

    Raises
    ------
    ValueError
        When the files and the gallery options do not fit together.
    """
    gallery, speaker = args.gallery, args.speaker
    if gallery is None and speaker is None:
        if args.audio2 is None:
            raise ValueError(
                "verify needs two audio files, or one with --gallery G "
                "--speaker NAME"
            )
        run_verify(args)
        return
    if gallery is None or speaker is None:
        given, needed = (
            ("--gallery", "--speaker")
            if speaker is None
            else ("--speaker", "--gallery")
        )
        raise ValueError(f"verify {given} needs {needed} too")
    if args.audio2 is not None:
        raise ValueError(
            "verify --gallery --speaker takes one audio file, got two "
            f"({args.audio1} {args.audio2})"
        )
    verifier = load_verifier(args)
    loaded = verifier.load_gallery(gallery)
    loaded.row_of(speaker, gallery)  # before any embedding
    embedding = encode_or_explain(verifier, [args.audio1], args)
    result = verifier.verify_embedding_against(
        loaded,
        speaker,
        embedding,
        verifier.file_durations([args.audio1])[0],
        threshold=args.threshold,
    )
    verdict = "same speaker" if result["decision"] else "different speakers"
    print(f"score: {result['score']:.6f}")
    if result["llr"] is not None:
        print(f"llr: {result['llr']:.6f}")
        print(f"probability: {result['probability']:.6f}")
    print(
        f"decision: {verdict} ({speaker!r}, threshold "
        f"{result['threshold']:.6f})"
    )


def gallery_speakers(path):
    """The speaker names of a ``score --gallery`` file (none without one).

    Arguments
    ---------
    path : str or os.PathLike or None
        The gallery file.

    Returns
    -------
    set of str
        Its speakers.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    GalleryError
        If it is corrupt or a folder.

    Example
    -------
    >>> gallery_speakers(None)
    set()
    """
    if path is None:
        return set()
    return set(SpeakerGallery.load(path).speakers)


def check_gallery_trials(
    trials, utterances, speakers, trials_path, where, listed=False
):
    """Checks a trial list whose enrol sides may name gallery speakers.

    Arguments
    ---------
    trials : dict
        ``enrol``, ``test`` and ``label`` lists (``read_trials``).
    utterances : dict
        The known utterance ids.
    speakers : set of str
        The gallery's speakers.
    trials_path : str
        The trial list, for messages.
    where : str
        Where the utterances come from, for messages.
    listed : bool
        The utterances were read off the trial list itself (``--audio-root``):
        its enrol ids naming speakers are dropped from them.

    Returns
    -------
    dict
        The utterances (without the speakers when ``listed``).

    Raises
    ------
    TrialError
        For an id that is both a speaker and an utterance, a test side
        naming a speaker, or an unknown id.

    Example
    -------
    >>> trials = {"enrol": ["ann", "u1"], "test": ["u2", "u1"], "label": [1, 1]}
    >>> check_gallery_trials(trials, {"u1": 0, "u2": 0}, {"ann"}, "t", "m")
    {'u1': 0, 'u2': 0}
    """
    if listed:
        enrolled = set(trials["enrol"]) - set(trials["test"])
        utterances = {
            key: value
            for key, value in utterances.items()
            if not (key in speakers and key in enrolled)
        }
    for number, (enrol, test) in enumerate(
        zip(trials["enrol"], trials["test"], strict=True), start=1
    ):
        trial = f"{trials_path}: trial {number} ({enrol} {test})"
        if enrol in speakers and enrol in utterances:
            raise TrialError(
                f"{trial}: {enrol!r} is both a gallery speaker and an "
                f"utterance of {where}; rename one"
            )
        if enrol not in speakers and enrol not in utterances:
            raise TrialError(
                f"{trial} names {enrol!r}, which is neither an utterance of "
                f"{where} nor a speaker of the gallery"
            )
        if test not in utterances:
            kind = "a gallery speaker" if test in speakers else "unknown"
            raise TrialError(
                f"{trial}: the test side {test!r} must be an utterance of "
                f"{where} ({kind})"
            )
    return utterances


def speaker_rows(gallery, trials, table, ids, durations=None, raw=False):
    """Adds the trials' gallery speakers as rows of an embedding table.

    Arguments
    ---------
    gallery : SpeakerGallery or None
        The gallery (None: the table is returned as it is).
    trials : dict
        The trial lists.
    table : torch.Tensor
        ``[N, E]`` utterance embeddings.
    ids : list of str
        Their N ids.
    durations : list of float, optional
        Their N durations (extended with the speakers' total durations).
    raw : bool
        Add the speakers' raw mean embeddings (for the score back-end)
        instead of their mean unit embeddings (for cosine scoring).

    Returns
    -------
    table : torch.Tensor
        ``[N + K, E]``.
    ids : list of str
        With the K speakers.
    durations : list of float or None
        With the speakers' durations.

    Example
    -------
    >>> gallery = SpeakerGallery(2, model="m")
    >>> gallery.enroll("ann", torch.tensor([[2.0, 0.0], [0.0, 2.0]]), [1, 1])
    >>> trials = {"enrol": ["ann"], "test": ["u"]}
    >>> table, ids, _ = speaker_rows(gallery, trials, torch.ones(1, 2), ["u"])
    >>> ids, table[1].tolist()
    (['u', 'ann'], [0.5, 0.5])
    """
    if gallery is None:
        return table, ids, durations
    names = [name for name in dict.fromkeys(trials["enrol"]) if name in gallery]
    rows = [gallery.row_of(name) for name in names]
    vectors = (gallery.raw_means if raw else gallery.means)[rows]
    table = torch.as_tensor(table)
    table = torch.cat([table, vectors.to(table.dtype)])
    if durations is not None:
        durations = list(durations) + gallery.durations[rows].tolist()
    return table, list(ids) + names, durations


def _audio_paths(args):
    """The positional audio files, then those of ``--list``."""
    paths = [os.fspath(path) for path in args.audio]
    if args.file_list:
        paths += read_file_list(args.file_list)[1]
    return paths
