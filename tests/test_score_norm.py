"""Tests of cohort score normalisation against SpeechBrain's per-trial loop.

The reference below re-implements, from its description, what SpeechBrain's
``speaker_verification_cosine.py`` does for every trial: cosine-score the
enrolment and the test embedding against the whole cohort (repeated),
keep the ``cohort_size`` highest scores, take their mean and ``torch.std``
and normalise the trial's cosine score.

Authors
 * unipool-sv developers 2026
"""

import pytest
import torch

from unipool_lobes.scoring import score_norm
from unipool_lobes.scoring.score_norm import (
    NORM_METHODS,
    ScoreNormalizer,
    cohort_statistics,
    normalize_scores,
)

TOLERANCE = 1e-5


def _speechbrain_per_trial(embedding_of, cohort, enrol_ids, test_ids, top_k):
    """SpeechBrain's loop: per-trial cohort stats, for all three methods."""
    similarity = torch.nn.CosineSimilarity(dim=-1, eps=1e-6)
    train_cohort = cohort.unsqueeze(1)  # [M, 1, E], a stack of [1, E]
    results = {method: [] for method in NORM_METHODS}
    for enrol_id, test_id in zip(enrol_ids, test_ids, strict=True):
        enrol = embedding_of[enrol_id].unsqueeze(0)  # [1, E]
        test = embedding_of[test_id].unsqueeze(0)
        side_stats = []
        for side in (enrol, test):
            cohort_scores = similarity(
                side.repeat(train_cohort.shape[0], 1, 1), train_cohort
            )
            if top_k is not None:
                cohort_scores = torch.topk(cohort_scores, k=top_k, dim=0)[0]
            side_stats.append(
                (
                    torch.mean(cohort_scores, dim=0),
                    torch.std(cohort_scores, dim=0),
                )
            )
        (mean_e, std_e), (mean_t, std_t) = side_stats
        score = similarity(enrol, test)[0]
        score_e = (score - mean_e) / std_e
        score_t = (score - mean_t) / std_t
        results["z-norm"].append(score_e.item())
        results["t-norm"].append(score_t.item())
        results["s-norm"].append((0.5 * (score_e + score_t)).item())
    return {
        method: torch.tensor(values, dtype=cohort.dtype)
        for method, values in results.items()
    }


def _random_setup(seed=0, n_utterances=30, n_cohort=200, dim=16, n_trials=80):
    """Random embeddings, cohort and trials over repeated utterances."""
    generator = torch.Generator().manual_seed(seed)
    ids = [f"spk{i % 7}/utt{i:03d}" for i in range(n_utterances)]
    # A shared direction makes the cohort scores skewed, like real ones.
    shared = torch.randn(dim, generator=generator)
    table = torch.randn(n_utterances, dim, generator=generator) + shared
    cohort = torch.randn(n_cohort, dim, generator=generator) + 0.5 * shared
    enrol_rows = torch.randint(n_utterances, (n_trials,), generator=generator)
    test_rows = torch.randint(n_utterances, (n_trials,), generator=generator)
    enrol_ids = [ids[r] for r in enrol_rows.tolist()]
    test_ids = [ids[r] for r in test_rows.tolist()]
    return ids, table, cohort, enrol_ids, test_ids


# In float32, top_k=2 gives stds of two near-equal scores and normalised
# scores of several hundred, where float32 cannot resolve 1e-5: that case
# is compared in float64 only.
@pytest.mark.parametrize(
    "top_k, dtype",
    [
        (None, torch.float32),
        (25, torch.float32),
        (200, torch.float32),
        (None, torch.float64),
        (2, torch.float64),
        (25, torch.float64),
    ],
)
def test_matches_speechbrain_per_trial_loop(top_k, dtype):
    """All three methods equal SpeechBrain's per-trial normalisation."""
    ids, table, cohort, enrol_ids, test_ids = _random_setup()
    table, cohort = table.to(dtype), cohort.to(dtype)
    embedding_of = dict(zip(ids, table, strict=True))
    expected = _speechbrain_per_trial(
        embedding_of, cohort, enrol_ids, test_ids, top_k
    )
    for method in NORM_METHODS:
        normalizer = ScoreNormalizer(cohort, top_k=top_k, method=method)
        ours = normalizer(table, ids, enrol_ids, test_ids)
        assert ours.shape == expected[method].shape
        assert ours.dtype == dtype
        difference = (ours - expected[method]).abs().max().item()
        assert difference < TOLERANCE, (method, difference)


def test_methods_differ_and_s_norm_is_the_average():
    """z, t and s differ on real data; s is the mean of z and t."""
    ids, table, cohort, enrol_ids, test_ids = _random_setup(seed=1)
    normalized = {
        method: ScoreNormalizer(cohort, top_k=40, method=method)(
            table, ids, enrol_ids, test_ids
        )
        for method in NORM_METHODS
    }
    assert not torch.allclose(normalized["z-norm"], normalized["t-norm"])
    torch.testing.assert_close(
        normalized["s-norm"],
        0.5 * (normalized["z-norm"] + normalized["t-norm"]),
    )


def test_chunking_does_not_change_the_statistics():
    """Any chunk size gives the same statistics as one chunk."""
    _, table, cohort, _, _ = _random_setup(seed=2)
    mean, std = cohort_statistics(table, cohort, top_k=17, chunk_size=10_000)
    for chunk_size in (1, 3, 29):
        chunk_mean, chunk_std = cohort_statistics(
            table, cohort, top_k=17, chunk_size=chunk_size
        )
        torch.testing.assert_close(chunk_mean, mean)
        torch.testing.assert_close(chunk_std, std)


def test_statistics_are_unbiased_std_of_the_top_k():
    """std uses the k - 1 divisor, over the k highest scores."""
    cohort = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    mean, std = cohort_statistics(torch.tensor([[3.0, 0.0]]), cohort, top_k=3)
    top3 = torch.tensor([1.0, 0.6, 0.0])
    torch.testing.assert_close(mean, top3.mean().reshape(1))
    torch.testing.assert_close(std, top3.std(correction=1).reshape(1))
    assert not torch.allclose(std, top3.std(correction=0).reshape(1))


def test_float64_embeddings_stay_float64():
    """float64 inputs give float64 statistics and scores."""
    ids, table, cohort, enrol_ids, test_ids = _random_setup(seed=3)
    scores = ScoreNormalizer(cohort.double(), top_k=5)(
        table.double(), ids, enrol_ids, test_ids
    )
    assert scores.dtype == torch.float64


def test_statistics_are_computed_once_per_needed_unique_id(monkeypatch):
    """One cohort pass per unique id, only of the side the method uses."""
    ids, table, cohort, enrol_ids, test_ids = _random_setup(seed=4)
    rows_scored = []
    original = score_norm.cohort_statistics

    def counting(embeddings, *args, **kwargs):
        rows_scored.append(embeddings.shape[0])
        return original(embeddings, *args, **kwargs)

    monkeypatch.setattr(score_norm, "cohort_statistics", counting)
    expected_rows = {
        "z-norm": len(set(enrol_ids)),
        "t-norm": len(set(test_ids)),
        "s-norm": len(set(enrol_ids) | set(test_ids)),
    }
    for method, n_rows in expected_rows.items():
        rows_scored.clear()
        ScoreNormalizer(cohort, top_k=5, method=method)(
            table, ids, enrol_ids, test_ids
        )
        assert rows_scored == [n_rows], method
    assert expected_rows["s-norm"] < len(enrol_ids) + len(test_ids)


def test_raw_scores_are_used_when_given():
    """Given raw scores replace the cosine ones, trial by trial."""
    ids, table, cohort, enrol_ids, test_ids = _random_setup(seed=5)
    normalizer = ScoreNormalizer(cohort, top_k=10, method="z-norm")
    cosine = normalizer(table, ids, enrol_ids, test_ids)
    shifted = normalizer(
        table,
        ids,
        enrol_ids,
        test_ids,
        raw_scores=torch.zeros(len(enrol_ids)),
    )
    mean, std = cohort_statistics(table, cohort, top_k=10)
    row = [ids.index(i) for i in enrol_ids]
    torch.testing.assert_close(shifted, -mean[row] / std[row])
    assert not torch.allclose(cosine, shifted)


def test_top_k_larger_than_cohort_names_both_numbers():
    """top_k > cohort size is an error naming both numbers."""
    cohort = torch.randn(12, 4)
    with pytest.raises(ValueError, match=r"top_k=13 .*cohort size 12"):
        ScoreNormalizer(cohort, top_k=13)
    with pytest.raises(ValueError, match=r"top_k=13 .*cohort size 12"):
        cohort_statistics(torch.randn(2, 4), cohort, top_k=13)


@pytest.mark.parametrize("top_k", [0, 1, 2.5, True])
def test_bad_top_k_is_rejected(top_k):
    """top_k must be an int of at least 2 (the std needs two scores)."""
    with pytest.raises(ValueError, match="top_k"):
        ScoreNormalizer(torch.randn(12, 4), top_k=top_k)


def test_unknown_method_lists_the_valid_ones():
    """An unknown method is a ValueError listing z-, t- and s-norm."""
    with pytest.raises(ValueError, match="z-norm, t-norm, s-norm"):
        ScoreNormalizer(torch.randn(12, 4), method="as-norm")
    with pytest.raises(ValueError, match="z-norm, t-norm, s-norm"):
        normalize_scores(
            torch.zeros(1), [0], [0], torch.zeros(1), torch.ones(1), "norm"
        )


def test_bad_shapes_and_ids_are_rejected():
    """Mismatched dimensions, lengths, ids and indices are clear errors."""
    cohort = torch.randn(12, 4)
    with pytest.raises(ValueError, match="5 dimensions, the cohort has 4"):
        cohort_statistics(torch.randn(2, 5), cohort)
    with pytest.raises(ValueError, match="cohort has 1 embeddings"):
        ScoreNormalizer(torch.randn(1, 4))
    with pytest.raises(ValueError, match=r"must be \[N, E\]"):
        ScoreNormalizer(torch.randn(12))
    with pytest.raises(ValueError, match="chunk_size"):
        cohort_statistics(torch.randn(2, 4), cohort, chunk_size=0)
    normalizer = ScoreNormalizer(cohort, top_k=3)
    table = torch.randn(2, 4)
    with pytest.raises(KeyError, match="'c'"):
        normalizer(table, ["a", "b"], ["a"], ["c"])
    with pytest.raises(ValueError, match="1 enrol ids but 2 test ids"):
        normalizer(table, ["a", "b"], ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="3 raw scores for 1 trials"):
        normalizer(table, ["a", "b"], ["a"], ["b"], raw_scores=torch.ones(3))
    with pytest.raises(ValueError, match="rows outside"):
        normalize_scores(
            torch.zeros(1), [0], [2], torch.zeros(2), torch.ones(2)
        )
