"""DET curves and UniPool's layer-significance plot, written as PNG files.

``plot_det`` / ``plot_det_multi`` draw detection error trade-off curves on
normal-deviate (probit) axes with ticks in %, and mark each system's EER
and minDCF operating points (from
``unipool_lobes.scoring.metrics``, so the values are exactly SpeechBrain's).
``plot_layer_significance`` draws a bar plot
of attention weights over the layers of the SSL model, with standard
deviation error bars when several weight vectors are given (e.g. one per
trial).

matplotlib is imported inside the functions and used without pyplot (a
``Figure`` on the Agg canvas), so importing this module is cheap and
never touches a display. Files are written atomically: to a temporary
file in the same folder, then moved into place with ``os.replace``.

Authors
 * unipool-sv developers 2026
"""

import os
import pathlib
import tempfile
from statistics import NormalDist

import numpy as np
import torch

from unipool_lobes.scoring.error_rates import det_curve
from unipool_lobes.scoring.metrics import dcf_names, verification_results

# DET axis ticks, in %.
_DET_TICKS_PERCENT = (
    0.001,
    0.01,
    0.1,
    0.5,
    1,
    2,
    5,
    10,
    20,
    40,
    60,
    80,
    90,
    95,
    98,
    99,
    99.9,
)


def _probit(probabilities):
    """The standard normal quantile of each probability (inf at 0 and 1)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    try:
        from scipy.stats import norm
    except ImportError:
        normal = NormalDist()
        clipped = np.clip(probabilities, 1e-300, 1 - 1e-16)
        values = np.vectorize(normal.inv_cdf, otypes=[np.float64])(clipped)
        values[probabilities <= 0] = -np.inf
        values[probabilities >= 1] = np.inf
        return values
    return norm.ppf(probabilities)


def _as_array(values):
    """Returns ``values`` (tensor, array or list) as a 1-D numpy array."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        if values.is_floating_point():
            values = values.double()
        values = values.numpy()
    return np.asarray(values).reshape(-1)


def _checked_trials(labels, scores, system):
    """Returns float64 scores and 0/1 labels, or raises ValueError."""
    where = f"system {system!r}: " if system is not None else ""
    labels = _as_array(labels)
    scores = _as_array(scores)
    if scores.size == 0:
        raise ValueError(f"{where}no trials (scores is empty)")
    if labels.size != scores.size:
        raise ValueError(
            f"{where}{labels.size} labels for {scores.size} scores"
        )
    if scores.dtype.kind not in "fiu":
        raise ValueError(f"{where}scores must be numbers, got {scores.dtype}")
    scores = scores.astype(np.float64)
    if not np.isfinite(scores).all():
        first = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise ValueError(f"{where}scores[{first}] is {scores[first]}")
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{where}labels[{first}] is {labels[first].item()!r}; labels "
            "must be 0 or 1"
        )
    labels = labels.astype(np.int64)
    n_positive = int(labels.sum())
    if n_positive in (0, labels.size):
        raise ValueError(
            f"{where}a DET curve needs target (1) and non-target (0) "
            f"trials; got {n_positive} targets of {labels.size}"
        )
    return labels, scores


def _operating_point(positive, negative, threshold):
    """(p_fa, p_miss) at ``threshold``, as ``det_curve`` defines them."""
    p_miss = float(np.mean(positive <= threshold))
    p_fa = float(np.mean(negative > threshold))
    return p_fa, p_miss


def _save_png(figure, path):
    """Writes ``figure`` as a PNG to ``path`` atomically; returns the path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        # NamedTemporaryFile creates the file 0600; give it the mode a
        # plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(handle.name, 0o666 & ~umask)
        with handle:
            figure.savefig(handle, format="png", dpi=120)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        pathlib.Path(handle.name).unlink(missing_ok=True)
        raise
    return path


def _new_figure(size):
    """A matplotlib Figure on the Agg canvas (no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure


def plot_det_multi(systems, path, title=None, p_target=0.01):
    """Draws the DET curves of several systems in one PNG file.

    Each curve is labelled with the system's EER (%) and normalised minDCF
    at ``p_target``; a circle marks the EER point and a square the minDCF
    operating point. Axes are normal deviates with ticks in %, from half a
    trial below the smallest non-zero rate (rates of 0 lie on that edge)
    to 50%, or further when a marked point lies beyond.

    Arguments
    ---------
    systems : dict
        Maps a system name to ``(labels, scores)``: 0/1 labels (1 =
        target) and one score per trial (tensors, arrays or lists).
    path : str or os.PathLike
        The PNG file to write (its folder is created if missing).
    title : str, optional
        The plot title.
    p_target : float
        Prior probability of a target, for the minDCF.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If ``systems`` is empty, or a system has no trials, different
        numbers of labels and scores, labels other than 0/1, non-finite
        scores, or lacks targets or non-targets.

    Example
    -------
    >>> labels = [1, 1, 1, 0, 0, 0]
    >>> path = plot_det_multi(
    ...     {
    ...         "good": (labels, [0.9, 0.8, 0.4, 0.3, 0.2, 0.1]),
    ...         "poor": (labels, [0.9, 0.2, 0.4, 0.3, 0.8, 0.1]),
    ...     },
    ...     str(getfixture("tmp_path") / "det.png"),
    ... )
    >>> path.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    if not systems:
        raise ValueError("plot_det_multi got no systems")
    curves = []
    for name, trials in systems.items():
        if len(trials) != 2:
            raise ValueError(
                f"system {name!r}: expected (labels, scores), got "
                f"{len(trials)} items"
            )
        labels, scores = _checked_trials(*trials, system=name)
        positive, negative = scores[labels == 1], scores[labels == 0]
        results = verification_results(labels, scores, p_targets=[p_target])
        norm_key, _, threshold_key = dcf_names(p_target)
        p_fa, p_miss, _ = det_curve(positive, negative)
        eer_point = _operating_point(positive, negative, results["threshold"])
        dcf_point = _operating_point(positive, negative, results[threshold_key])
        results["norm_minDCF"] = results[norm_key]
        curves.append((name, p_fa, p_miss, eer_point, dcf_point, results))

    # Rates are multiples of 1/n: the axes start half a trial below the
    # smallest non-zero rate, and reach 50% or far enough to show every
    # marked point; curves run off the axes beyond that.
    n_largest = max(
        max(c[5]["n_positive"], c[5]["n_negative"], 2) for c in curves
    )
    smallest = max(min(1e-3, 0.5 / n_largest), 1e-5)
    worst = float(_probit(max(max(*c[3], *c[4]) for c in curves)))
    upper_choices = (0.5, 0.8, 0.95, 0.99, 1 - smallest)
    largest = next(
        (c for c in upper_choices if _probit(c) >= worst + 0.2),
        upper_choices[-1],
    )
    low, high = _probit([smallest, largest])

    figure = _new_figure((6.0, 6.0))
    axes = figure.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(curves))]
    for (name, p_fa, p_miss, eer, dcf, results), colour in zip(
        curves, colours, strict=True
    ):
        label = (
            f"{name}: EER {results['EER_percent']:.2f}%, "
            f"norm. minDCF {results['norm_minDCF']:.4f}"
        )
        x, y = (
            _probit(np.clip(p_fa, smallest, 1 - smallest)),
            _probit(np.clip(p_miss, smallest, 1 - smallest)),
        )
        axes.plot(x, y, color=colour, linewidth=1.5, label=label)
        eer_x, eer_y = _probit(np.clip(eer, smallest, 1 - smallest))
        dcf_x, dcf_y = _probit(np.clip(dcf, smallest, 1 - smallest))
        axes.plot(eer_x, eer_y, "o", color=colour, markersize=7)
        axes.plot(
            dcf_x, dcf_y, "s", color=colour, markersize=7, fillstyle="none"
        )
    axes.plot([low, high], [low, high], ":", color="grey", linewidth=0.8)
    axes.plot([], [], "o", color="black", label="EER point")
    axes.plot(
        [],
        [],
        "s",
        color="black",
        fillstyle="none",
        label=f"minDCF point (p_target={p_target:g})",
    )
    # Keep the ticks at least 1/18 of the axis apart, so labels never
    # overlap on wide axes.
    ticks, positions = [], []
    for tick in _DET_TICKS_PERCENT:
        position = float(_probit(tick / 100))
        if not low <= position <= high:
            continue
        if positions and position - positions[-1] < (high - low) / 18:
            continue
        ticks.append(tick)
        positions.append(position)
    tick_positions = np.asarray(positions)
    tick_labels = [f"{t:g}" for t in ticks]
    for set_ticks, set_labels, set_limits in (
        (axes.set_xticks, axes.set_xticklabels, axes.set_xlim),
        (axes.set_yticks, axes.set_yticklabels, axes.set_ylim),
    ):
        set_ticks(tick_positions)
        set_labels(tick_labels)
        set_limits(low, high)
    axes.set_xlabel("False alarm rate (%)")
    axes.set_ylabel("Miss rate (%)")
    axes.grid(True, linestyle=":", linewidth=0.6)
    axes.set_aspect("equal")
    axes.legend(loc="upper right", fontsize="small")
    if title:
        axes.set_title(title)
    figure.tight_layout()
    return _save_png(figure, path)


def plot_det(labels, scores, path, title=None, p_target=0.01):
    """Draws one system's DET curve, EER and minDCF points in a PNG file.

    See ``plot_det_multi``; the legend gives the EER (%) and the
    normalised minDCF at ``p_target``.

    Arguments
    ---------
    labels : list, numpy.ndarray or torch.Tensor
        1 for a target trial, 0 for a non-target one.
    scores : list, numpy.ndarray or torch.Tensor
        The score of each trial.
    path : str or os.PathLike
        The PNG file to write (its folder is created if missing).
    title : str, optional
        The plot title.
    p_target : float
        Prior probability of a target, for the minDCF.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If there are no trials, the numbers of labels and scores differ, a
        label is not 0/1, a score is not finite, or a class is missing.

    Example
    -------
    >>> path = plot_det(
    ...     [1, 1, 0, 0],
    ...     [0.9, 0.3, 0.4, 0.1],
    ...     str(getfixture("tmp_path") / "det.png"),
    ...     title="toy",
    ... )
    >>> path.suffix, path.stat().st_size > 1000
    ('.png', True)
    """
    # Checked here first so that errors do not name a system.
    labels, scores = _checked_trials(labels, scores, system=None)
    return plot_det_multi(
        {"system": (labels, scores)}, path, title=title, p_target=p_target
    )


def plot_layer_significance(weights, path, layer_names=None, title=None):
    """Draws a bar plot of attention weights over layers in a PNG file.

    With one weight vector ``[L]`` the bars are its values; with several
    ``[n, L]`` (e.g. UniPool's layer attention for each trial of a list)
    the bars are the means over the n vectors and the error bars their
    standard deviation (``ddof=0``; none when n = 1).

    Arguments
    ---------
    weights : list, numpy.ndarray or torch.Tensor
        The ``[L]`` or ``[n, L]`` weights over L layers.
    path : str or os.PathLike
        The PNG file to write (its folder is created if missing).
    layer_names : list of str, optional
        The L bar labels; default ``0 .. L-1`` (layer 0 being the
        convolutional front-end's output in SSL models).
    title : str, optional
        The plot title.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If ``weights`` is empty, not 1-D or 2-D, holds non-finite values,
        or ``layer_names`` does not have L names.

    Example
    -------
    >>> weights = torch.softmax(torch.randn(10, 13), dim=1)
    >>> path = plot_layer_significance(
    ...     weights, str(getfixture("tmp_path") / "layers.png")
    ... )
    >>> path.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().double().numpy()
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim not in (1, 2):
        raise ValueError(
            f"weights must be [L] or [n, L], got shape {weights.shape}"
        )
    if weights.size == 0:
        raise ValueError(f"weights is empty (shape {weights.shape})")
    if not np.isfinite(weights).all():
        raise ValueError("weights holds NaN or infinite values")
    table = weights.reshape(-1, weights.shape[-1])
    n_layers = table.shape[1]
    if layer_names is None:
        layer_names = [str(layer) for layer in range(n_layers)]
    layer_names = [str(name) for name in layer_names]
    if len(layer_names) != n_layers:
        raise ValueError(
            f"{len(layer_names)} layer names for {n_layers} layers"
        )
    mean = table.mean(axis=0)
    spread = table.std(axis=0) if table.shape[0] > 1 else None

    figure = _new_figure((max(4.0, 0.45 * n_layers + 1.5), 3.6))
    axes = figure.add_subplot()
    positions = np.arange(n_layers)
    axes.bar(
        positions,
        mean,
        yerr=spread,
        color="C0",
        edgecolor="black",
        linewidth=0.5,
        capsize=3 if spread is not None else 0,
        error_kw={"linewidth": 0.8},
    )
    axes.set_xticks(positions)
    axes.set_xticklabels(
        layer_names, rotation=90 if max(map(len, layer_names)) > 3 else 0
    )
    axes.set_xlim(-0.6, n_layers - 0.4)
    axes.set_xlabel("Layer")
    if spread is None:
        axes.set_ylabel("Weight")
    else:
        axes.set_ylabel(f"Weight (mean ± std over {table.shape[0]})")
    axes.grid(True, axis="y", linestyle=":", linewidth=0.6)
    axes.set_axisbelow(True)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    return _save_png(figure, path)
