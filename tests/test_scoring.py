"""Tests of the exact fast EER / minDCF, cosine scoring and score files.

EER and minDCF are checked against SpeechBrain's own (O(N^2)) functions on
random, tied, unbalanced, separated and reversed score lists: same value and
same threshold.

Authors
 * unipool-sv developers 2026
"""

import os

import numpy as np
import pytest
import torch
from speechbrain.utils import metric_stats

from unipool_lobes.scoring.metrics import (
    EER,
    cosine_score_trials,
    det_curve,
    minDCF,
    normalized_minDCF,
    read_scores,
    stack_embeddings,
    verification_results,
    write_scores,
)

TOLERANCE = 1e-6


def _assert_same_as_speechbrain(positive, negative, **costs):
    """Our EER and minDCF (value and threshold) equal SpeechBrain's."""
    expected_eer = metric_stats.EER(positive, negative)
    expected_dcf = metric_stats.minDCF(positive, negative, **costs)
    got_eer = EER(positive, negative)
    got_dcf = minDCF(positive, negative, **costs)
    for got, expected in ((got_eer, expected_eer), (got_dcf, expected_dcf)):
        assert isinstance(got[0], float) and isinstance(got[1], float)
        assert got[0] == pytest.approx(expected[0], abs=TOLERANCE)
        assert got[1] == pytest.approx(expected[1], abs=TOLERANCE)


def _normal_scores(seed, n_positive, n_negative, decimals=None):
    """float32 scores: positives N(1, 1), negatives N(0, 1)."""
    rng = np.random.default_rng(seed)
    positive = rng.normal(1.0, 1.0, n_positive)
    negative = rng.normal(0.0, 1.0, n_negative)
    if decimals is not None:
        positive, negative = positive.round(decimals), negative.round(decimals)
    return (
        torch.tensor(positive, dtype=torch.float32),
        torch.tensor(negative, dtype=torch.float32),
    )


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_positive,n_negative", [(7, 12), (150, 260)])
def test_random_small_lists_match_speechbrain(seed, n_positive, n_negative):
    """Random continuous scores, several costs and priors."""
    positive, negative = _normal_scores(seed, n_positive, n_negative)
    _assert_same_as_speechbrain(positive, negative)
    _assert_same_as_speechbrain(
        positive, negative, c_miss=10.0, c_fa=1.0, p_target=0.05
    )
    _assert_same_as_speechbrain(
        positive, negative, c_miss=1.0, c_fa=3.0, p_target=0.5
    )


@pytest.mark.parametrize("seed", range(2))
def test_random_large_list_matches_speechbrain(seed):
    """A few thousand trials (SpeechBrain's minDCF needs O(N^2) memory)."""
    positive, negative = _normal_scores(seed, 1300, 1700)
    _assert_same_as_speechbrain(positive, negative)


@pytest.mark.parametrize("decimals", [2, 1, 0])
@pytest.mark.parametrize("seed", range(3))
def test_heavily_tied_lists_match_speechbrain(seed, decimals):
    """Scores rounded to 2, 1 or 0 decimals: many equal scores."""
    positive, negative = _normal_scores(seed, 900, 1100, decimals=decimals)
    _assert_same_as_speechbrain(positive, negative)
    _assert_same_as_speechbrain(positive, negative, p_target=0.3)


def test_integer_scores_match_speechbrain():
    """Few distinct integer scores shared by both classes."""
    rng = np.random.default_rng(3)
    for _ in range(30):
        positive = torch.tensor(rng.integers(0, 5, 40), dtype=torch.float32)
        negative = torch.tensor(rng.integers(0, 4, 60), dtype=torch.float32)
        _assert_same_as_speechbrain(positive, negative)


def test_tiny_lists_match_speechbrain():
    """Hundreds of tiny tied lists, where tie-breaking decides everything."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        n_positive, n_negative = rng.integers(1, 9, size=2)
        positive = torch.tensor(rng.integers(0, 6, n_positive) / 2.0)
        negative = torch.tensor(rng.integers(0, 6, n_negative) / 2.0)
        _assert_same_as_speechbrain(positive.float(), negative.float())


def test_float32_tie_breaking_of_the_eer_loop():
    """SpeechBrain compares a float32 |FAR-FRR| with a float64 one.

    Here |2/3 - 0| is the smallest gap at two thresholds, 1.0 first; as the
    float32 gap rounds below the float64 one, SpeechBrain moves on to 2.5.
    A plain first-argmin would answer 1.0.
    """
    positive = torch.tensor([1.0, 4.0, 5.0])
    negative = torch.tensor([4.0])
    expected = metric_stats.EER(positive, negative)
    assert expected[1] == 2.5
    assert EER(positive, negative) == expected


@pytest.mark.parametrize(
    "n_positive,n_negative", [(20, 3000), (3000, 15), (1, 500), (500, 1)]
)
def test_unbalanced_lists_match_speechbrain(n_positive, n_negative):
    """Far more negatives than positives, or the reverse."""
    positive, negative = _normal_scores(5, n_positive, n_negative)
    _assert_same_as_speechbrain(positive, negative)


def test_perfectly_separated_and_reversed_lists():
    """All positives above all negatives (EER 0), then the reverse (1)."""
    positive, negative = _normal_scores(2, 300, 400)
    positive = positive + 20
    _assert_same_as_speechbrain(positive, negative)
    assert EER(positive, negative)[0] == 0.0
    assert minDCF(positive, negative)[0] == 0.0
    _assert_same_as_speechbrain(negative, positive)
    assert EER(negative, positive)[0] == pytest.approx(1.0, abs=1e-3)


def test_all_equal_and_single_scores():
    """One distinct score, or one score per class."""
    _assert_same_as_speechbrain(torch.full((5,), 0.3), torch.full((8,), 0.3))
    _assert_same_as_speechbrain(torch.tensor([0.7]), torch.tensor([0.2]))
    _assert_same_as_speechbrain(torch.tensor([0.2]), torch.tensor([0.7]))
    assert EER(torch.full((5,), 0.3), torch.full((8,), 0.3)) == (
        0.5,
        pytest.approx(0.3, abs=TOLERANCE),
    )


def test_float64_numpy_and_list_inputs():
    """float64 tensors are kept float64; arrays and lists are accepted."""
    positive, negative = _normal_scores(4, 200, 300)
    _assert_same_as_speechbrain(positive.double(), negative.double())
    as_lists = EER(positive.tolist(), negative.tolist())
    assert as_lists == EER(positive, negative)
    assert EER(positive.numpy(), negative.numpy()) == EER(positive, negative)
    assert minDCF(positive.numpy(), negative.tolist()) == minDCF(
        positive, negative
    )


@pytest.mark.parametrize("metric", [EER, minDCF, normalized_minDCF, det_curve])
def test_empty_or_nan_scores_raise(metric):
    """Empty lists or NaN scores are refused with a clear message."""
    with pytest.raises(ValueError, match="positive_scores is empty"):
        metric(torch.tensor([]), torch.tensor([0.1]))
    with pytest.raises(ValueError, match="negative_scores is empty"):
        metric([0.1], [])
    with pytest.raises(ValueError, match="NaN"):
        metric([0.1, float("nan")], [0.2])


def test_normalized_min_dcf():
    """Normalised minDCF is minDCF / min(c_miss p_t, c_fa (1 - p_t))."""
    positive, negative = _normal_scores(6, 400, 600)
    value, threshold = minDCF(positive, negative)
    normalised, same_threshold = normalized_minDCF(positive, negative)
    assert normalised == pytest.approx(value / 0.01)
    assert same_threshold == threshold
    value, _ = minDCF(positive, negative, c_miss=2.0, c_fa=1.0, p_target=0.7)
    normalised, _ = normalized_minDCF(
        positive, negative, c_miss=2.0, c_fa=1.0, p_target=0.7
    )
    assert normalised == pytest.approx(value / 0.3)


def test_det_curve_is_monotone_and_holds_the_eer_point():
    """p_miss rises, p_fa falls, and the EER operating point is on it."""
    positive, negative = _normal_scores(7, 700, 900, decimals=2)
    p_fa, p_miss, thresholds = det_curve(positive, negative)
    assert p_fa.shape == p_miss.shape == thresholds.shape
    assert np.all(np.diff(thresholds) > 0)
    assert np.all(np.diff(p_miss) >= 0) and np.all(np.diff(p_fa) <= 0)
    assert p_miss[-1] == 1.0 and p_fa[-1] == 0.0
    eer, eer_threshold = EER(positive, negative)
    # The EER threshold is a score or a midpoint: the point at or below it.
    at = np.searchsorted(thresholds, eer_threshold, side="right") - 1
    assert (p_fa[at] + p_miss[at]) / 2 == pytest.approx(eer, abs=TOLERANCE)
    assert np.abs(p_fa - p_miss).min() == pytest.approx(
        abs(p_fa[at] - p_miss[at]), abs=TOLERANCE
    )


def test_cosine_scores_match_a_naive_loop():
    """Chunked, gathered cosine scores equal a per-trial loop."""
    rng = np.random.default_rng(8)
    embeddings = torch.tensor(rng.normal(size=(30, 16)), dtype=torch.float32)
    ids = [f"utt{i}" for i in range(30)]
    enrol = [ids[i] for i in rng.integers(0, 30, 100)]
    test = [ids[i] for i in rng.integers(0, 30, 100)]
    scores = cosine_score_trials(embeddings, ids, enrol, test, chunk_size=7)
    expected = torch.stack(
        [
            torch.nn.functional.cosine_similarity(
                embeddings[ids.index(e)], embeddings[ids.index(t)], dim=0
            )
            for e, t in zip(enrol, test, strict=True)
        ]
    )
    assert scores.shape == (100,)
    torch.testing.assert_close(scores, expected, atol=1e-6, rtol=0)


def test_cosine_scores_from_a_dict_of_embeddings():
    """stack_embeddings feeds cosine_score_trials with [1, 1, E] embeddings."""
    table = {
        "a": torch.tensor([[[1.0, 0.0]]]),
        "b": torch.tensor([[[0.0, 3.0]]]),
        "c": torch.tensor([[[-2.0, 0.0]]]),
    }
    ids, embeddings = stack_embeddings(table)
    assert ids == ["a", "b", "c"] and embeddings.shape == (3, 2)
    scores = cosine_score_trials(embeddings, ids, ["a", "a"], ["b", "c"])
    assert scores.tolist() == [0.0, -1.0]
    with pytest.raises(ValueError, match="'b' has 3 values"):
        stack_embeddings({"a": torch.zeros(2), "b": torch.zeros(3)})
    with pytest.raises(ValueError, match="empty"):
        stack_embeddings({})


def test_cosine_scoring_rejects_unknown_ids_and_bad_tables():
    """Unknown ids raise KeyError naming them; bad tables raise ValueError."""
    embeddings = torch.eye(3)
    ids = ["a", "b", "c"]
    with pytest.raises(KeyError, match="ghost"):
        cosine_score_trials(embeddings, ids, ["a", "ghost"], ["b", "c"])
    with pytest.raises(ValueError, match="twice"):
        cosine_score_trials(embeddings, ["a", "a", "c"], ["a"], ["c"])
    with pytest.raises(ValueError, match="2 ids for 3"):
        cosine_score_trials(embeddings, ["a", "b"], ["a"], ["b"])
    with pytest.raises(ValueError, match="enrol ids"):
        cosine_score_trials(embeddings, ids, ["a", "b"], ["b"])


def test_score_file_round_trip(tmp_path):
    """float32 scores come back exactly; no temporary file is left."""
    positive, negative = _normal_scores(9, 50, 70)
    scores = torch.cat([positive, negative])
    labels = [1] * 50 + [0] * 70
    enrol = [f"spk{i % 7}/utt{i}" for i in range(120)]
    test = [f"spk{i % 5}/utt{i + 1}" for i in range(120)]
    path = tmp_path / "out" / "scores.txt"
    write_scores(path, enrol, test, torch.tensor(labels), scores)
    got_enrol, got_test, got_labels, got_scores = read_scores(path)
    assert got_enrol == enrol and got_test == test
    assert got_labels.tolist() == labels
    assert np.array_equal(got_scores.astype(np.float32), scores.numpy())
    assert os.listdir(path.parent) == ["scores.txt"]
    # The float32 scores read back give SpeechBrain's float32 results.
    results = verification_results(got_labels, got_scores.astype(np.float32))
    assert results["EER"] == EER(positive, negative)[0]


def test_write_scores_refuses_bad_input_and_keeps_the_old_file(tmp_path):
    """A failed write leaves the previous file as it was."""
    path = tmp_path / "scores.txt"
    write_scores(path, ["a"], ["b"], [1], [0.5])
    before = path.read_text()
    with pytest.raises(ValueError, match="whitespace"):
        write_scores(path, ["a x"], ["b"], [1], [0.5])
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        write_scores(path, ["a"], ["b"], [2], [0.5])
    with pytest.raises(ValueError, match="must match"):
        write_scores(path, ["a", "c"], ["b"], [1], [0.5])
    assert path.read_text() == before
    assert os.listdir(tmp_path) == ["scores.txt"]


def test_read_scores_names_the_bad_line(tmp_path):
    """Malformed lines raise ValueError with file:line."""
    path = tmp_path / "scores.txt"
    path.write_text("a b 1 0.5\n\na c 1\n")
    with pytest.raises(ValueError, match=r"scores.txt:3: expected"):
        read_scores(path)
    path.write_text("a b 1 0.5\na c yes 0.1\n")
    with pytest.raises(ValueError, match=r"scores.txt:2: label"):
        read_scores(path)
    path.write_text("a b 0 high\n")
    with pytest.raises(ValueError, match=r"scores.txt:1: score"):
        read_scores(path)


def test_verification_results_agree_with_speechbrain():
    """The results dict holds SpeechBrain's EER and both minDCF forms."""
    positive, negative = _normal_scores(10, 300, 500, decimals=2)
    labels = torch.cat([torch.ones(300), torch.zeros(500)]).long()
    order = torch.randperm(800, generator=torch.Generator().manual_seed(0))
    scores = torch.cat([positive, negative])[order]
    results = verification_results(labels[order], scores, p_targets=[0.05])
    eer, threshold = metric_stats.EER(positive, negative)
    min_dcf, _ = metric_stats.minDCF(positive, negative, p_target=0.05)
    assert results["EER"] == pytest.approx(eer, abs=TOLERANCE)
    assert results["EER_percent"] == pytest.approx(100 * eer, abs=1e-4)
    assert results["threshold"] == pytest.approx(threshold, abs=TOLERANCE)
    assert results["min_Cdet_p0.05"] == pytest.approx(min_dcf, abs=TOLERANCE)
    assert results["norm_minDCF_p0.05"] == pytest.approx(
        min_dcf / 0.05, abs=1e-5
    )
    assert "minDCF" not in results
    assert (results["n_trials"], results["n_positive"]) == (800, 300)
    assert results["n_negative"] == 500
    assert all(
        isinstance(v, (int, float))
        for k, v in results.items()
        if k != "p_targets"
    )


def test_verification_results_name_each_cost_and_prior():
    """Both operating points (0.01 and 0.05) in both forms, labelled; no
    field is called just ``minDCF`` (before: ``minDCF`` held the normalised
    value, SpeechBrain's function of that name returns the unnormalised)."""
    positive, negative = _normal_scores(3, 400, 600, decimals=3)
    labels = torch.cat([torch.ones(400), torch.zeros(600)]).long()
    results = verification_results(labels, torch.cat([positive, negative]))
    assert results["p_targets"] == [0.01, 0.05]
    for p_target in (0.01, 0.05):
        expected, threshold = metric_stats.minDCF(
            positive, negative, p_target=p_target
        )
        assert results[f"min_Cdet_p{p_target}"] == pytest.approx(
            expected, abs=TOLERANCE
        )
        assert results[f"norm_minDCF_p{p_target}"] == pytest.approx(
            expected / p_target, abs=1e-5
        )
        assert results[f"minDCF_threshold_p{p_target}"] == pytest.approx(
            threshold, abs=TOLERANCE
        )
    assert not any(key in ("minDCF", "minDCF_unnormalized") for key in results)


def test_verification_results_refuses_bad_labels():
    """Labels must be 0/1, one per score, with both classes present."""
    with pytest.raises(ValueError, match=r"labels\[1\] is 3"):
        verification_results([1, 3], [0.1, 0.2])
    with pytest.raises(ValueError, match="2 labels for 3 scores"):
        verification_results([1, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="negative_scores is empty"):
        verification_results([1, 1], [0.1, 0.2])
