"""Tests of the DET and layer-significance plots.

Authors
 * unipool-sv developers 2026
"""

import os
import struct
import sys
import zlib

import numpy as np
import processes
import pytest
import torch

from unipool_lobes.scoring.plots import (
    plot_det,
    plot_det_multi,
    plot_layer_significance,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    """Checks the PNG signature and IHDR chunk; returns (width, height)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    header = data[16 : 16 + length]
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert crc == zlib.crc32(kind + header)
    assert data.endswith(b"IEND\xaeB`\x82")
    width, height = struct.unpack(">II", header[:8])
    return width, height


def _trials(seed=0, n_trials=2_000, separation=2.0):
    """Random 0/1 labels (a tenth targets) and Gaussian scores."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n_trials) < 0.1).astype(int)
    labels[:2] = [1, 0]
    scores = rng.normal(0.0, 1.0, n_trials) + separation * labels
    return labels, scores


def _assert_only(folder, name):
    """``folder`` holds ``name`` and no leftover temporary file."""
    assert sorted(os.listdir(folder)) == [name]


def test_plot_det_writes_a_valid_png(tmp_path):
    """A DET plot is a real, non-trivial PNG, written in place."""
    labels, scores = _trials()
    path = plot_det(labels, scores, tmp_path / "det.png", title="toy")
    assert path == tmp_path / "det.png"
    width, height = _png_size(path)
    assert width > 300 and height > 300
    assert path.stat().st_size > 10_000
    _assert_only(tmp_path, "det.png")


def test_plot_det_accepts_tensors_and_creates_folders(tmp_path):
    """Tensor inputs work and missing folders are created."""
    labels, scores = _trials(seed=1)
    path = plot_det(
        torch.tensor(labels),
        torch.tensor(scores, dtype=torch.float32),
        tmp_path / "a" / "b" / "det.png",
    )
    _png_size(path)


def test_plot_det_replaces_an_existing_file(tmp_path):
    """Plotting again over a file replaces it whole."""
    path = tmp_path / "det.png"
    path.write_bytes(b"old")
    labels, scores = _trials(seed=2)
    plot_det(labels, scores, path)
    _png_size(path)
    _assert_only(tmp_path, "det.png")


def test_plot_det_multi_draws_several_systems(tmp_path):
    """Several systems, including a poor one, fit in one PNG."""
    labels, good = _trials(seed=3, separation=4.0)
    _, poor = _trials(seed=3, separation=0.3)
    path = plot_det_multi(
        {"UniPool": (labels, good), "baseline": (labels, poor)},
        tmp_path / "det_multi.png",
        title="two systems",
        p_target=0.05,
    )
    _png_size(path)
    assert path.stat().st_size > 10_000


def test_separable_scores_still_plot(tmp_path):
    """Zero error rates (EER 0) are drawn on the axes' edge, no crash."""
    labels = np.array([1] * 5 + [0] * 5)
    scores = np.r_[np.linspace(1, 2, 5), np.linspace(-2, -1, 5)]
    _png_size(plot_det(labels, scores, tmp_path / "det.png"))


@pytest.mark.parametrize(
    "labels, scores, message",
    [
        ([], [], "empty"),
        ([1, 0, 1], [0.1, 0.2], "3 labels for 2 scores"),
        ([1, 0, 2], [0.1, 0.2, 0.3], r"labels\[2\] is 2"),
        ([1, 0, -1], [0.1, 0.2, 0.3], r"labels\[2\] is -1"),
        (["1", "0"], [0.1, 0.2], r"labels\[0\]"),
        ([1, 1, 1], [0.1, 0.2, 0.3], "non-target"),
        ([0, 0], [0.1, 0.2], "non-target"),
        ([1, 0], [0.1, float("nan")], r"scores\[1\] is nan"),
    ],
)
def test_plot_det_rejects_bad_input(tmp_path, labels, scores, message):
    """Bad trials raise ValueError and write nothing."""
    with pytest.raises(ValueError, match=message):
        plot_det(labels, scores, tmp_path / "det.png")
    assert os.listdir(tmp_path) == []


def test_plot_det_multi_rejects_bad_systems(tmp_path):
    """No systems, or a bad one, is a ValueError naming it."""
    with pytest.raises(ValueError, match="no systems"):
        plot_det_multi({}, tmp_path / "det.png")
    labels, scores = _trials()
    with pytest.raises(ValueError, match="system 'bad'"):
        plot_det_multi(
            {"ok": (labels, scores), "bad": (labels[:-1], scores)},
            tmp_path / "det.png",
        )
    assert os.listdir(tmp_path) == []


def test_layer_significance_single_and_averaged(tmp_path):
    """[L] and [n, L] weights both give a PNG; names may be given."""
    weights = torch.softmax(torch.randn(25, 13), dim=1)
    single = plot_layer_significance(weights[0], tmp_path / "one.png")
    averaged = plot_layer_significance(
        weights,
        tmp_path / "mean.png",
        layer_names=["cnn"] + [f"layer{i}" for i in range(1, 13)],
        title="UniPool layer significance",
    )
    for path in (single, averaged):
        width, height = _png_size(path)
        assert width > 300 and height > 200
        assert path.stat().st_size > 5_000
    # The error bars change the picture.
    assert single.read_bytes() != averaged.read_bytes()


def test_layer_significance_accepts_lists_and_one_row(tmp_path):
    """A list and a single-row [1, L] array work (no error bars)."""
    _png_size(plot_layer_significance([0.2, 0.5, 0.3], tmp_path / "a.png"))
    _png_size(
        plot_layer_significance(np.array([[0.2, 0.5, 0.3]]), tmp_path / "b.png")
    )


@pytest.mark.parametrize(
    "weights, names, message",
    [
        ([], None, "empty"),
        (np.zeros((3, 0)), None, "empty"),
        (np.zeros((2, 2, 2)), None, r"\[L\] or \[n, L\]"),
        ([0.5, float("nan")], None, "NaN"),
        ([0.2, 0.8], ["a", "b", "c"], "3 layer names for 2 layers"),
    ],
)
def test_layer_significance_rejects_bad_input(
    tmp_path, weights, names, message
):
    """Bad weights or names raise ValueError and write nothing."""
    with pytest.raises(ValueError, match=message):
        plot_layer_significance(weights, tmp_path / "l.png", names)
    assert os.listdir(tmp_path) == []


def test_importing_the_module_does_not_import_matplotlib():
    """matplotlib is imported lazily, inside the plotting functions."""
    code = (
        "import sys, unipool_lobes.scoring.plots; "
        "sys.exit(int('matplotlib' in sys.modules))"
    )
    assert processes.run([sys.executable, "-c", code], 60).returncode == 0


def test_probit_without_scipy_matches_scipy(monkeypatch):
    """The stdlib fallback gives scipy's normal quantiles."""
    from scipy.stats import norm

    from unipool_lobes.scoring import plots

    probabilities = np.array([0.0, 1e-5, 0.01, 0.3, 0.5, 0.9, 1 - 1e-5, 1.0])
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    fallback = plots._probit(probabilities)
    np.testing.assert_allclose(fallback, norm.ppf(probabilities), rtol=1e-9)
