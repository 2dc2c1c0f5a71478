"""Benchmark: s-norm with statistics cached per utterance vs per trial.

A Vox1-O-like setting: 40,000 trials whose enrolment and test sides are
drawn from 4,874 unique utterances, a 5,000-utterance cohort, 192-dim
embeddings (ECAPA's size), ``top_k=300``. SpeechBrain's default
``cohort_size: 20000`` does not fit a 5,000-row cohort (its ``topk`` would
fail), so a 300-score adaptive cohort is used for both approaches.

* ours: ``unipool_lobes.scoring.score_norm.ScoreNormalizer`` (cosine
  scores, then the cohort statistics once per unique utterance, in chunks);
* per trial: the loop of SpeechBrain's ``speaker_verification_cosine.py``
  (for each trial, ``repeat`` both embeddings to the cohort size,
  ``CosineSimilarity``, ``topk``, ``mean``/``std``, normalise), measured on
  the first 1,000 trials and extrapolated linearly to 40,000 (each trial
  costs the same), marked so. Its scores on those trials must equal
  ours to 1e-5.

CPU, ``torch.set_num_threads(2)`` (``--threads``), float32; times are
the best of three runs (ours), of two (per trial) after a warm-up, and
one run (no cache).

A middle row runs our batched kernel without the cache (one cohort pass
per trial side, 80,000 passes), to separate the gain from caching from
the gain of one matrix product per chunk over ``repeat`` +
``CosineSimilarity`` per trial.

Usage: python benchmarks/bench_score_norm.py [--threads 2]

Authors
 * unipool-sv developers 2026
"""

import argparse
import time

import torch

from unipool_lobes.scoring.score_norm import (
    ScoreNormalizer,
    cohort_statistics,
    normalize_scores,
)

N_TRIALS = 40_000
N_UTTERANCES = 4_874
N_COHORT = 5_000
EMBEDDING_DIM = 192
TOP_K = 300
N_PER_TRIAL_MEASURED = 1_000
THREADS = 2
SEED = 0
TOLERANCE = 1e-5


def _setup():
    """Random embeddings sharing a direction, a cohort and trial ids."""
    generator = torch.Generator().manual_seed(SEED)
    shared = torch.randn(EMBEDDING_DIM, generator=generator)
    table = torch.randn(N_UTTERANCES, EMBEDDING_DIM, generator=generator)
    table += shared
    cohort = torch.randn(N_COHORT, EMBEDDING_DIM, generator=generator)
    cohort += 0.5 * shared
    ids = [f"id{i // 10:05d}/video/{i:05d}" for i in range(N_UTTERANCES)]
    enrol_rows = torch.randint(N_UTTERANCES, (N_TRIALS,), generator=generator)
    test_rows = torch.randint(N_UTTERANCES, (N_TRIALS,), generator=generator)
    enrol_ids = [ids[r] for r in enrol_rows.tolist()]
    test_ids = [ids[r] for r in test_rows.tolist()]
    return table, cohort, ids, enrol_ids, test_ids


def _per_trial_s_norm(embedding_of, cohort, enrol_ids, test_ids):
    """SpeechBrain's per-trial s-norm loop (embeddings stored as [1, E])."""
    similarity = torch.nn.CosineSimilarity(dim=-1, eps=1e-6)
    train_cohort = cohort.unsqueeze(1)
    scores = []
    for enrol_id, test_id in zip(enrol_ids, test_ids, strict=True):
        enrol = embedding_of[enrol_id]
        test = embedding_of[test_id]
        enrol_scores = similarity(
            enrol.repeat(train_cohort.shape[0], 1, 1), train_cohort
        )
        enrol_scores = torch.topk(enrol_scores, k=TOP_K, dim=0)[0]
        mean_e, std_e = enrol_scores.mean(dim=0), enrol_scores.std(dim=0)
        test_scores = similarity(
            test.repeat(train_cohort.shape[0], 1, 1), train_cohort
        )
        test_scores = torch.topk(test_scores, k=TOP_K, dim=0)[0]
        mean_t, std_t = test_scores.mean(dim=0), test_scores.std(dim=0)
        score = similarity(enrol, test)[0]
        scores.append(
            0.5 * ((score - mean_e) / std_e + (score - mean_t) / std_t)
        )
    return torch.cat(scores)


def _uncached_s_norm(table, cohort, ids, enrol_ids, test_ids):
    """Our batched kernel without the cache: one cohort pass per trial side."""
    row_of = {utterance_id: row for row, utterance_id in enumerate(ids)}
    enrol_rows = torch.tensor([row_of[i] for i in enrol_ids])
    test_rows = torch.tensor([row_of[i] for i in test_ids])
    sides = torch.cat([table[enrol_rows], table[test_rows]])
    mean, std = cohort_statistics(sides, cohort, top_k=TOP_K)
    unit = torch.nn.functional.normalize(table, dim=1)
    scores = (unit[enrol_rows] * unit[test_rows]).sum(dim=1)
    n_trials = len(enrol_ids)
    return normalize_scores(
        scores,
        torch.arange(n_trials),
        torch.arange(n_trials, 2 * n_trials),
        mean,
        std,
        "s-norm",
    )


def _best_time(function, repeats, warm_up=True):
    """Best wall time of ``repeats`` calls, after a warm-up; last result."""
    result = function() if warm_up else None
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main():
    """Runs the approaches and prints the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=THREADS)
    threads = parser.parse_args().threads
    torch.set_num_threads(threads)
    table, cohort, ids, enrol_ids, test_ids = _setup()
    normalizer = ScoreNormalizer(cohort, top_k=TOP_K, method="s-norm")
    ours_time, ours = _best_time(
        lambda: normalizer(table, ids, enrol_ids, test_ids), repeats=3
    )
    n_unique = len(set(enrol_ids) | set(test_ids))
    uncached_time, uncached = _best_time(
        lambda: _uncached_s_norm(table, cohort, ids, enrol_ids, test_ids),
        repeats=1,
        warm_up=False,
    )

    embedding_of = {
        i: row.unsqueeze(0) for i, row in zip(ids, table, strict=True)
    }
    subset = slice(0, N_PER_TRIAL_MEASURED)
    per_trial_time, per_trial = _best_time(
        lambda: _per_trial_s_norm(
            embedding_of, cohort, enrol_ids[subset], test_ids[subset]
        ),
        repeats=2,
    )
    difference = max(
        (per_trial - ours[subset]).abs().max().item(),
        (uncached - ours).abs().max().item(),
    )
    if difference > TOLERANCE:
        raise AssertionError(
            f"scores differ from the reference by {difference:.2e}"
        )
    extrapolated = per_trial_time * N_TRIALS / N_PER_TRIAL_MEASURED

    print(
        f"s-norm, {N_TRIALS:,} trials over {n_unique:,} unique utterances, "
        f"cohort {N_COHORT:,} x {EMBEDDING_DIM}, top_k={TOP_K}, CPU, "
        f"{threads} torch thread(s), float32\n"
    )
    print("| approach | trials | cohort passes | time (s) | vs ours |")
    print("|---|---|---|---|---|")
    print(
        f"| ours: stats once per unique utterance | {N_TRIALS:,} | "
        f"{n_unique:,} | {ours_time:.3f} (measured) | 1.0x |"
    )
    print(
        f"| our batched kernel, stats per trial side (no cache) | "
        f"{N_TRIALS:,} | {2 * N_TRIALS:,} | {uncached_time:.2f} (measured) "
        f"| {uncached_time / ours_time:.1f}x slower |"
    )
    print(
        f"| SpeechBrain's per-trial loop | {N_PER_TRIAL_MEASURED:,} | "
        f"{2 * N_PER_TRIAL_MEASURED:,} | {per_trial_time:.2f} (measured) | "
        f"- |"
    )
    print(
        f"| SpeechBrain's per-trial loop | {N_TRIALS:,} | "
        f"{2 * N_TRIALS:,} | {extrapolated:.1f} (extrapolated) | "
        f"{extrapolated / ours_time:.0f}x slower |"
    )
    print(
        f"\nmax |difference| of the scores to ours (per-trial loop on its "
        f"{N_PER_TRIAL_MEASURED:,} trials, no-cache on all): "
        f"{difference:.2e}"
    )


if __name__ == "__main__":
    main()
