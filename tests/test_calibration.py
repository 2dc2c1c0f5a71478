"""Tests of the LAP scoring back-end: AS-norm, Cllr, QMF calibration.

The references below are written from the description of the authors'
``src/evaluate/norm_score.py`` and ``qmf_calibration.py`` (spec
``lap_pipeline.md`` section 7), one trial at a time in plain Python.

Authors
 * unipool-sv developers 2026
"""

import json
import math
import random

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from unipool_lobes.scoring.calibration import (
    CALIBRATION_FILE,
    FEATURE_NAMES,
    SCORE_BACKEND_FILE,
    QualityCalibration,
    ScoreBackend,
    ScoreBackendError,
    as_norm_pairs,
    draw_calibration_trials,
    evaluate_backend_stages,
    fit_calibration,
    load_score_backend,
    quality_features,
)
from unipool_lobes.scoring.metrics import (
    EER,
    Cllr,
    metrics_line,
    minCllr,
    reported_metrics,
    verification_results,
)
from unipool_lobes.scoring.score_norm import (
    ScoreNormalizer,
    speaker_mean_cohort,
    subtract_mean,
)


# ------------------------------------------------------------- references
def _cosine(a, b):
    """Plain-Python cosine of two sequences."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def _mean_std(values):
    """Mean and unbiased standard deviation (divisor n - 1)."""
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance)


def _by_hand_as_norm(enrol, test, cohort, top_k):
    """½[(s - μe)/σe + (s - μt)/σt], top-k cohort cosines per side."""
    score = _cosine(enrol, test)
    normalised = []
    for side in (enrol, test):
        kept = sorted((_cosine(side, row) for row in cohort), reverse=True)
        mean, std = _mean_std(kept[:top_k])
        normalised.append((score - mean) / std)
    return 0.5 * sum(normalised)


def _by_hand_cohort(table, speakers):
    """Speaker means of the raw rows less the mean of all rows."""
    n, size = len(table), len(table[0])
    mean = [sum(row[d] for row in table) / n for d in range(size)]
    cohort = {}
    for row, speaker in zip(table, speakers, strict=True):
        cohort.setdefault(speaker, []).append(row)
    vectors = [
        [sum(r[d] for r in rows) / len(rows) - mean[d] for d in range(size)]
        for rows in cohort.values()
    ]
    return list(cohort), vectors, mean


def _population(
    n_speakers, per_speaker, size, generator, prefix, noise=0.6, quality=False
):
    """Speakers around random centres; with ``quality``, short utterances
    are noisier (noise std ~ 1/sqrt(duration)) and durations vary."""
    centres = torch.randn(n_speakers, size, generator=generator)
    table = centres.repeat_interleave(per_speaker, dim=0)
    if quality:
        durations = torch.exp(
            torch.empty(len(table)).uniform_(
                math.log(0.5), math.log(30.0), generator=generator
            )
        )
        scale = 1.0 / durations.sqrt()
    else:
        durations = torch.full((len(table),), 4.0)
        scale = torch.full((len(table),), noise)
    table = table + scale.unsqueeze(1) * torch.randn(
        table.shape, generator=generator
    )
    speakers = [f"{prefix}{i // per_speaker}" for i in range(len(table))]
    return table, speakers, durations.tolist()


def _trial_list(speakers, n_trials, generator):
    """Balanced random trials over the utterances of ``speakers``."""
    rng = random.Random(int(torch.randint(1 << 30, (1,), generator=generator)))
    ids = [f"u{i}" for i in range(len(speakers))]
    by_speaker = {}
    for i, speaker in enumerate(speakers):
        by_speaker.setdefault(speaker, []).append(i)
    names = list(by_speaker)
    trials = {"enrol": [], "test": [], "label": []}
    for n in range(n_trials):
        if n % 2 == 0:
            a, b = rng.sample(by_speaker[rng.choice(names)], 2)
        else:
            s1, s2 = rng.sample(names, 2)
            a, b = rng.choice(by_speaker[s1]), rng.choice(by_speaker[s2])
        trials["enrol"].append(ids[a])
        trials["test"].append(ids[b])
        trials["label"].append(1 - n % 2)
    return ids, trials


# ------------------------------------------------------- cohort, AS-norm
def test_speaker_mean_cohort_and_mean_subtraction_by_hand():
    """Cohort = speaker means less the mean of all utterances (not of the
    speaker means: the speakers have unequal utterance counts here)."""
    generator = torch.Generator().manual_seed(3)
    table = torch.randn(9, 4, generator=generator, dtype=torch.float64)
    speakers = ["b", "a", "b", "b", "c", "a", "b", "c", "c"]
    ids, cohort, mean = speaker_mean_cohort(table, speakers)
    want_ids, want_cohort, want_mean = _by_hand_cohort(table.tolist(), speakers)
    assert ids == want_ids == ["b", "a", "c"]
    assert torch.allclose(mean, torch.tensor(want_mean, dtype=torch.float64))
    assert torch.allclose(
        cohort, torch.tensor(want_cohort, dtype=torch.float64)
    )
    # The mean of the speaker means is another vector: would be caught.
    speaker_means = cohort + mean
    assert not torch.allclose(speaker_means.mean(0), mean, atol=1e-3)
    centred = subtract_mean(table, mean)
    assert torch.allclose(centred, table - torch.tensor(want_mean).double())


def test_as_norm_equals_the_formula_by_hand():
    """Mean-subtracted s-norm, top-k, unbiased std, on a small example."""
    generator = torch.Generator().manual_seed(5)
    train = torch.randn(30, 6, generator=generator, dtype=torch.float64)
    speakers = [f"s{i % 10}" for i in range(30)]
    evaluated = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    ids = ["e0", "e1", "e2", "e3"]
    enrol, test, top_k = ["e0", "e1", "e2"], ["e1", "e3", "e0"], 4
    _, cohort, mean = speaker_mean_cohort(train, speakers)
    centred = subtract_mean(evaluated, mean)
    ours = ScoreNormalizer(cohort, top_k, "s-norm")(centred, ids, enrol, test)
    pairs = as_norm_pairs(
        centred[[0, 1, 2]], centred[[1, 3, 0]], cohort, top_k
    ).tolist()
    _, by_hand_cohort, by_hand_mean = _by_hand_cohort(train.tolist(), speakers)
    row = {name: i for i, name in enumerate(ids)}
    rows = [
        [v - m for v, m in zip(r, by_hand_mean, strict=True)]
        for r in evaluated.tolist()
    ]
    want = [
        _by_hand_as_norm(rows[row[e]], rows[row[t]], by_hand_cohort, top_k)
        for e, t in zip(enrol, test, strict=True)
    ]
    assert ours.tolist() == pytest.approx(want, abs=1e-9)
    assert pairs == pytest.approx(want, abs=1e-9)
    # The biased std, or the whole cohort, would give other scores.
    biased = [w * math.sqrt((top_k - 1) / top_k) for w in want]
    assert ours.tolist() != pytest.approx(biased, abs=1e-3)
    whole = ScoreNormalizer(cohort, None, "s-norm")(centred, ids, enrol, test)
    assert whole.tolist() != pytest.approx(want, abs=1e-3)


def test_stage_scores_of_evaluate_backend_stages_by_hand():
    """cosine, mean_subtracted and as_norm stages: the formulas per trial;
    every stage reports EER, minDCF at 0.01 and 0.05, Cllr and minCllr."""
    generator = torch.Generator().manual_seed(11)
    train, speakers, durations = _population(12, 4, 6, generator, "t")
    train = train.double()
    evaluated, eval_speakers, eval_durations = _population(
        4, 4, 6, generator, "e"
    )
    evaluated = evaluated.double()
    ids, trials = _trial_list(eval_speakers, 20, generator)
    stages, artefacts = evaluate_backend_stages(
        train,
        speakers,
        durations,
        evaluated,
        ids,
        eval_durations,
        trials,
        top_k=5,
        n_calibration_trials=300,
    )
    assert list(stages) == ["cosine", "mean_subtracted", "as_norm", "qmf"]
    _, cohort, mean = _by_hand_cohort(train.tolist(), speakers)
    assert torch.allclose(artefacts["cohort"], torch.tensor(cohort).double())
    raw = evaluated.tolist()
    centred = [[v - m for v, m in zip(r, mean, strict=True)] for r in raw]
    row = {name: i for i, name in enumerate(ids)}
    pairs = [
        (row[e], row[t])
        for e, t in zip(trials["enrol"], trials["test"], strict=True)
    ]
    want = {
        "cosine": [_cosine(raw[a], raw[b]) for a, b in pairs],
        "mean_subtracted": [_cosine(centred[a], centred[b]) for a, b in pairs],
        "as_norm": [
            _by_hand_as_norm(centred[a], centred[b], cohort, 5)
            for a, b in pairs
        ],
    }
    for name, values in want.items():
        assert stages[name]["scores"].tolist() == pytest.approx(
            values, abs=1e-9
        ), name
    for name, stage in stages.items():
        results = stage["results"]
        for key in (
            "EER",
            "norm_minDCF_p0.01",
            "norm_minDCF_p0.05",
            "Cllr",
            "minCllr",
        ):
            assert key in results, (name, key)
        assert results["minCllr"] <= results["Cllr"] + 1e-12
    probability = stages["qmf"]["probability"].numpy()
    llr = stages["qmf"]["scores"].numpy()
    assert np.allclose(probability, 1 / (1 + np.exp(-llr)))


def test_top_k_above_the_cohort_is_lowered_and_recorded(caplog):
    """600 on 12 speakers: S - 2 = 10 is used (the fitting trials remove
    two speakers), and recorded in the calibration."""
    generator = torch.Generator().manual_seed(2)
    train, speakers, durations = _population(12, 3, 5, generator, "t")
    evaluated, eval_speakers, eval_durations = _population(
        3, 3, 5, generator, "e"
    )
    ids, trials = _trial_list(eval_speakers, 10, generator)
    _, artefacts = evaluate_backend_stages(
        train,
        speakers,
        durations,
        evaluated,
        ids,
        eval_durations,
        trials,
        n_calibration_trials=100,
    )
    assert artefacts["calibration"]["top_k"] == 10
    assert "top_k=600" in caplog.text


# ------------------------------------------------------------------ Cllr
def test_cllr_of_known_llrs():
    """All-zero LLRs cost 1 bit; the formula on two values; confident and
    right is near 0, confident and wrong is large."""
    assert Cllr([0.0] * 5, [0.0] * 3) == pytest.approx(1.0, abs=1e-12)
    value = Cllr([math.log(3.0)], [-math.log(3.0)])
    assert value == pytest.approx(math.log2(4 / 3), abs=1e-12)
    assert Cllr([20.0, 30.0], [-25.0]) < 1e-8
    assert Cllr([-5.0], [5.0]) > 7
    # Useless-but-calibrated LLRs whatever the scores: min Cllr 1.
    assert minCllr([0.3, 0.3], [0.3, 0.3, 0.3]) == pytest.approx(1.0)


def test_min_cllr_is_pav_and_invariant_to_monotone_transforms():
    """min Cllr <= Cllr; a strictly increasing transform keeps it; it
    equals the Cllr of scikit-learn's isotonic fit turned into LLRs."""
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(4)
    positive = rng.normal(1.5, 1.0, 300)
    negative = rng.normal(-0.5, 1.3, 500)
    positive[:20] = np.round(positive[:20], 1)  # some ties across classes
    negative[:40] = np.round(negative[:40], 1)
    value = minCllr(positive, negative)
    assert 0 < value < Cllr(positive, negative)
    for transform in (np.exp, lambda x: 3 * x - 7, lambda x: x**3):
        assert minCllr(transform(positive), transform(negative)) == (
            pytest.approx(value, abs=1e-12)
        )
    scores = np.concatenate([positive, negative])
    labels = np.concatenate([np.ones(300), np.zeros(500)])
    posterior = IsotonicRegression(y_min=0, y_max=1).fit_transform(
        scores, labels
    )
    with np.errstate(divide="ignore"):
        llrs = np.log(posterior) - np.log1p(-posterior) - math.log(300 / 500)
    assert value == pytest.approx(Cllr(llrs[:300], llrs[300:]), abs=1e-9)
    # A non-monotone transform changes it (the test could fail).
    assert minCllr(np.sin(3 * positive), np.sin(3 * negative)) != (
        pytest.approx(value, abs=1e-3)
    )


def test_verification_results_give_cllr_only_when_asked():
    """Existing callers see the same keys; llr=True adds Cllr/minCllr to
    the results, the reported metrics and the metrics line."""
    labels = [1, 1, 0, 0, 1]
    scores = [2.0, -0.5, -1.0, 0.5, 1.0]
    plain = verification_results(labels, scores)
    with_llr = verification_results(labels, scores, llr=True)
    assert "Cllr" not in plain and "Cllr" not in reported_metrics(plain)
    assert "Cllr" not in metrics_line(plain)
    assert set(with_llr) - set(plain) == {"Cllr", "minCllr"}
    assert {k: v for k, v in with_llr.items() if k in plain} == plain
    positive = [s for s, label in zip(scores, labels, strict=True) if label]
    negative = [s for s, label in zip(scores, labels, strict=True) if not label]
    assert with_llr["Cllr"] == pytest.approx(Cllr(positive, negative))
    assert with_llr["minCllr"] == pytest.approx(minCllr(positive, negative))
    assert reported_metrics(with_llr)["Cllr"] == round(with_llr["Cllr"], 4)
    assert "minCllr" in metrics_line(with_llr)


# --------------------------------------------------------- fitting trials
def _speaker_list(generator_seed=0):
    """300 speakers with 1 to 9 utterances, some with a single one."""
    rng = random.Random(generator_seed)
    speakers = []
    for s in range(300):
        speakers.extend(
            [f"spk{s:03d}"] * (1 if s % 10 == 0 else rng.randint(2, 9))
        )
    rng.shuffle(speakers)
    return speakers


def test_calibration_draw_halves_seeded_and_valid():
    """30,000 trials: 15,000 target then 15,000 non-target, valid pairs,
    single-utterance speakers never in a target trial, seeded."""
    speakers = _speaker_list()
    draw = draw_calibration_trials(speakers, 30000, seed=7)
    labels = draw["label"]
    assert labels.tolist() == [1] * 15000 + [0] * 15000
    ids = draw["speaker_ids"]
    assert ids == list(dict.fromkeys(speakers))
    counts = {s: speakers.count(s) for s in ids}
    enrol_speakers = [speakers[i] for i in draw["enrol"]]
    test_speakers = [speakers[i] for i in draw["test"]]
    for n in range(30000):
        e, t = enrol_speakers[n], test_speakers[n]
        if labels[n]:
            assert e == t and draw["enrol"][n] != draw["test"][n]
            assert counts[e] >= 2
            assert draw["exclude"][n].tolist() == [ids.index(e), -1]
        else:
            assert e != t
            assert draw["exclude"][n].tolist() == [ids.index(e), ids.index(t)]
    singles = {s for s, c in counts.items() if c == 1}
    assert singles and singles.isdisjoint(enrol_speakers[:15000])
    assert singles & set(enrol_speakers[15000:] + test_speakers[15000:])
    again = draw_calibration_trials(speakers, 30000, seed=7)
    other = draw_calibration_trials(speakers, 30000, seed=8)
    for key in ("enrol", "test", "exclude"):
        assert np.array_equal(draw[key], again[key])
    assert not np.array_equal(draw["enrol"], other["enrol"])
    assert draw_calibration_trials(speakers, 5)["label"].tolist() == [
        1,
        1,
        1,
        0,
        0,
    ]


def test_calibration_draw_makes_the_authors_calls():
    """With every speaker having two utterances, the draw is the authors'
    sequence of calls (choice, sample of 2; sample of 2, choice, choice) on
    a generator seeded the same."""
    speakers = [s for s in _speaker_list(1) if s != "spk000"]
    speakers = [s for s in speakers if speakers.count(s) >= 2]
    draw = draw_calibration_trials(speakers, 200, seed=7)
    utterances = {}
    for row, speaker in enumerate(speakers):
        utterances.setdefault(speaker, []).append(row)
    names = list(utterances)
    generator = random.Random(7)
    for n in range(200):
        if n < 100:
            pair = generator.sample(utterances[generator.choice(names)], 2)
        else:
            first, second = generator.sample(names, 2)
            pair = [
                generator.choice(utterances[first]),
                generator.choice(utterances[second]),
            ]
        assert [draw["enrol"][n], draw["test"][n]] == pair


def test_calibration_draw_refuses_impossible_sets():
    """No speaker with two utterances, or a single speaker: an error."""
    with pytest.raises(ValueError, match="two utterances"):
        draw_calibration_trials(["a", "b", "c"], 10)
    with pytest.raises(ValueError, match="at least 2"):
        draw_calibration_trials(["a", "a", "a"], 10)


def test_trial_speakers_are_removed_from_the_cohort():
    """Scores with exclusion equal the by-hand ones on the cohort less the
    trial's speakers, and differ from the full-cohort scores; the fitted
    calibration is the one of by-hand features with the exclusion."""
    generator = torch.Generator().manual_seed(8)
    train, speakers, durations = _population(
        10, 4, 5, generator, "t", noise=0.3
    )
    train = train.double()
    _, cohort, mean = speaker_mean_cohort(train, speakers)
    centred = subtract_mean(train, mean)
    draw = draw_calibration_trials(speakers, 60, seed=3)
    top_k = 4
    ours = as_norm_pairs(
        centred[draw["enrol"]],
        centred[draw["test"]],
        cohort,
        top_k,
        draw["exclude"],
    )
    full = as_norm_pairs(
        centred[draw["enrol"]], centred[draw["test"]], cohort, top_k
    )
    rows = centred.tolist()
    want = []
    for e, t, drop in zip(
        draw["enrol"], draw["test"], draw["exclude"], strict=True
    ):
        kept = [c for i, c in enumerate(cohort.tolist()) if i not in drop]
        assert len(kept) == 10 - (1 if drop[1] < 0 else 2)
        want.append(_by_hand_as_norm(rows[e], rows[t], kept, top_k))
    assert ours.tolist() == pytest.approx(want, abs=1e-9)
    assert (ours - full).abs().max() > 0.1
    calibration = fit_calibration(
        train,
        speakers,
        durations,
        mean,
        cohort,
        top_k=top_k,
        n_trials=60,
        seed=3,
    )
    features = quality_features(
        torch.tensor(want),
        train[draw["enrol"]],
        train[draw["test"]],
        np.asarray(durations)[draw["enrol"]],
        np.asarray(durations)[draw["test"]],
    )
    model = LogisticRegression(solver="liblinear", random_state=3)
    model.fit(features, draw["label"])
    assert np.allclose(calibration.coefficients, model.coef_[0], atol=1e-8)
    features[:, 0] = full.numpy()
    unexcluded = LogisticRegression(solver="liblinear", random_state=3)
    unexcluded.fit(features, draw["label"])
    assert not np.allclose(calibration.coefficients, unexcluded.coef_[0])


# --------------------------------------------------------------- QMF fit
def test_quality_features_order_and_values():
    """The authors' order; raw norms; population std (divisor E)."""
    enrol = np.array([[1.0, -2.0, 3.0, 0.0]])
    test = np.array([[0.5, 0.5, 0.5, -1.5]])
    features = quality_features([1.5], enrol, test, [2.0], [8.0])[0]
    want = [
        1.5,
        math.log(2.0),
        math.log(8.0),
        6.0,
        math.sqrt(14.0),
        3.0,
        math.sqrt(3.0),
        float(np.std(enrol[0])),
        float(np.std(test[0])),
    ]
    assert features.tolist() == pytest.approx(want, abs=1e-12)
    assert len(FEATURE_NAMES) == 9 and FEATURE_NAMES[7] == "std_enrol"
    assert np.std(enrol[0]) != pytest.approx(np.std(enrol[0], ddof=1))
    with pytest.raises(ValueError, match="positive"):
        quality_features([1.0], enrol, test, [0.0], [1.0])


def _held_out_quality_experiment():
    """QMF vs raw AS-norm vs a score-only calibration, held-out speakers."""
    generator = torch.Generator().manual_seed(21)
    train, speakers, durations = _population(
        150, 8, 16, generator, "t", quality=True
    )
    evaluated, eval_speakers, eval_durations = _population(
        80, 8, 16, generator, "e", quality=True
    )
    ids, trials = _trial_list(eval_speakers, 4000, generator)
    stages, artefacts = evaluate_backend_stages(
        train,
        speakers,
        durations,
        evaluated,
        ids,
        eval_durations,
        trials,
        top_k=50,
        n_calibration_trials=6000,
        seed=7,
    )
    return train, speakers, durations, stages, artefacts, trials


def test_qmf_lowers_cllr_on_held_out_trials_when_quality_matters():
    """Short utterances are noisier: the QMF LLRs of held-out speakers cost
    less than the AS-norm scores taken as LLRs and than a calibration on
    the score alone; its probability is scikit-learn's predict_proba."""
    train, speakers, durations, stages, artefacts, trials = (
        _held_out_quality_experiment()
    )
    qmf = stages["qmf"]["results"]
    as_norm = stages["as_norm"]["results"]
    # Score-only logistic calibration on the same fitting trials.
    draw = draw_calibration_trials(speakers, 6000, seed=7)
    centred = subtract_mean(train, artefacts["cohort_mean"])
    fit_scores = as_norm_pairs(
        centred[draw["enrol"]],
        centred[draw["test"]],
        artefacts["cohort"],
        50,
        draw["exclude"],
    )
    score_only = LogisticRegression(solver="liblinear", random_state=7)
    score_only.fit(fit_scores.numpy()[:, None], draw["label"])
    held_out = stages["as_norm"]["scores"].numpy()[:, None]
    labels = np.asarray(trials["label"])
    llr_score_only = score_only.decision_function(held_out)
    cllr_score_only = Cllr(
        llr_score_only[labels == 1], llr_score_only[labels == 0]
    )
    print(
        f"\nheld-out Cllr: as_norm {as_norm['Cllr']:.4f}, score-only "
        f"{cllr_score_only:.4f}, qmf {qmf['Cllr']:.4f}; minCllr: as_norm "
        f"{as_norm['minCllr']:.4f}, qmf {qmf['minCllr']:.4f}; EER as_norm "
        f"{as_norm['EER_percent']:.2f} %, qmf {qmf['EER_percent']:.2f} %"
    )
    assert qmf["Cllr"] < 0.7 * as_norm["Cllr"]
    assert qmf["Cllr"] < cllr_score_only - 0.01
    assert qmf["EER"] < as_norm["EER"]
    assert qmf["minCllr"] < as_norm["minCllr"]
    assert qmf["Cllr"] >= qmf["minCllr"]
    # Our LLRs and probabilities are those of the authors' sklearn model.
    calibration = QualityCalibration.from_dict(artefacts["calibration"])
    features = quality_features(
        fit_scores,
        train[draw["enrol"]],
        train[draw["test"]],
        np.asarray(durations)[draw["enrol"]],
        np.asarray(durations)[draw["test"]],
    )
    model = LogisticRegression(solver="liblinear", random_state=7)
    model.fit(features, draw["label"])
    assert np.allclose(calibration.coefficients, model.coef_[0], atol=1e-10)
    assert np.allclose(
        calibration.probability(features),
        model.predict_proba(features)[:, 1],
        atol=1e-12,
    )
    assert calibration.prior_log_odds == 0.0
    assert np.allclose(
        calibration.llr(features), model.decision_function(features)
    )


def _permutation_population(n_speakers, per_speaker, generator, prefix):
    """Embeddings that are permutations of one integer vector: their L1,
    L2 norms and std are exactly equal, so only the score varies."""
    size = 32
    base = torch.arange(size, dtype=torch.float32) - 10.0
    rows = []
    for _ in range(n_speakers):
        order = torch.randperm(size, generator=generator)
        for _ in range(per_speaker):
            own = order.clone()
            for _ in range(6):
                i, j = torch.randint(size, (2,), generator=generator).tolist()
                own[[i, j]] = own[[j, i]]
            rows.append(base[own])
    speakers = [f"{prefix}{i // per_speaker}" for i in range(len(rows))]
    return torch.stack(rows), speakers, [3.0] * len(rows)


def test_calibration_keeps_the_eer_when_monotone_in_the_score():
    """Constant durations and norms: the LLR is increasing in the AS-norm
    score, so EER and minDCF are exactly the AS-norm ones."""
    generator = torch.Generator().manual_seed(6)
    train, speakers, durations = _permutation_population(40, 5, generator, "t")
    evaluated, eval_speakers, eval_durations = _permutation_population(
        20, 5, generator, "e"
    )
    ids, trials = _trial_list(eval_speakers, 600, generator)
    stages, artefacts = evaluate_backend_stages(
        train,
        speakers,
        durations,
        evaluated,
        ids,
        eval_durations,
        trials,
        top_k=20,
        n_calibration_trials=2000,
    )
    assert artefacts["calibration"]["coefficients"][0] > 0
    qmf, as_norm = stages["qmf"]["results"], stages["as_norm"]["results"]
    assert 0 < as_norm["EER"] < 0.5
    for key in ("EER", "norm_minDCF_p0.01", "norm_minDCF_p0.05"):
        assert qmf[key] == as_norm[key], key
    assert qmf["minCllr"] == pytest.approx(as_norm["minCllr"], abs=1e-12)
    labels = np.asarray(trials["label"], dtype=bool)
    llr = stages["qmf"]["scores"].numpy()
    assert EER(llr[labels], llr[~labels])[0] == as_norm["EER"]


# ------------------------------------------------------------ JSON files
@pytest.fixture(scope="module")
def fitted():
    """A small fitted back-end and the data it scores."""
    generator = torch.Generator().manual_seed(13)
    train, speakers, durations = _population(
        20, 4, 8, generator, "t", quality=True
    )
    evaluated, eval_speakers, eval_durations = _population(
        5, 4, 8, generator, "e", quality=True
    )
    ids, trials = _trial_list(eval_speakers, 40, generator)
    stages, artefacts = evaluate_backend_stages(
        train,
        speakers,
        durations,
        evaluated,
        ids,
        eval_durations,
        trials,
        top_k=10,
        n_calibration_trials=400,
        seed=5,
    )
    return artefacts, stages, (evaluated, ids, eval_durations, trials)


def test_back_end_round_trip_gives_identical_outputs(fitted, tmp_path):
    """Saved and loaded: the same LLRs and probabilities, bit for bit; the
    JSON holds what the fit was (no pickle: plain JSON and tensors)."""
    artefacts, stages, (evaluated, ids, durations, trials) = fitted
    artefacts["backend"].save(tmp_path)
    content = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    assert content == artefacts["calibration"]
    for key, value in {
        "feature_names": list(FEATURE_NAMES),
        "top_k": 10,
        "cohort_size": 20,
        "seed": 5,
        "n_trials": 400,
        "n_target": 200,
        "solver": "liblinear",
    }.items():
        assert content[key] == value, key
    assert len(content["coefficients"]) == 9
    tensors = torch.load(tmp_path / SCORE_BACKEND_FILE, weights_only=True)
    assert set(tensors) == {"cohort_mean", "cohort"}
    loaded = load_score_backend(tmp_path)
    out = loaded.score(
        evaluated, ids, durations, trials["enrol"], trials["test"]
    )
    assert torch.equal(out["llr"], stages["qmf"]["scores"])
    assert torch.equal(out["probability"], stages["qmf"]["probability"])
    row = {name: i for i, name in enumerate(ids)}
    enrol = [row[i] for i in trials["enrol"]]
    test = [row[i] for i in trials["test"]]
    llr, probability = loaded.score_pairs(
        evaluated[enrol],
        evaluated[test],
        np.asarray(durations)[enrol],
        np.asarray(durations)[test],
    )
    assert torch.allclose(llr, out["llr"], atol=1e-5)
    assert torch.allclose(probability, out["probability"], atol=1e-6)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: text.replace('"std_test"', '"std"'), "feature names"),
        (
            lambda text: json.dumps(
                {**json.loads(text), "coefficients": [1.0] * 8}
            ),
            "8 coefficients",
        ),
        (lambda text: json.dumps({**json.loads(text), "top_k": 99}), "top_k"),
        (lambda text: "[1, 2]", "not a JSON object"),
    ],
)
def test_corrupt_calibration_json_names_the_file(
    fitted, tmp_path, damage, message
):
    """A truncated or mismatched calibration.json: an error naming it."""
    fitted[0]["backend"].save(tmp_path)
    path = tmp_path / CALIBRATION_FILE
    path.write_text(damage(path.read_text()))
    with pytest.raises(ScoreBackendError, match=message) as caught:
        load_score_backend(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_corrupt_or_partial_cohort_file_is_an_error(fitted, tmp_path):
    """Garbage or a pickled object in score_backend.pt, or one of the two
    files missing: errors naming the file."""
    backend = fitted[0]["backend"]
    backend.save(tmp_path)
    path = tmp_path / SCORE_BACKEND_FILE
    path.write_bytes(b"not a tensor file")
    with pytest.raises(ScoreBackendError, match=SCORE_BACKEND_FILE):
        load_score_backend(tmp_path)
    torch.save({"cohort_mean": backend.cohort_mean, "x": ValueError}, path)
    with pytest.raises(ScoreBackendError, match=SCORE_BACKEND_FILE):
        load_score_backend(tmp_path)
    torch.save(
        {"cohort_mean": backend.cohort_mean, "cohort": backend.cohort[:15]},
        path,
    )
    with pytest.raises(ScoreBackendError, match="cohort of 20"):
        load_score_backend(tmp_path)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=SCORE_BACKEND_FILE):
        load_score_backend(tmp_path)
    (tmp_path / CALIBRATION_FILE).unlink()
    assert load_score_backend(tmp_path) is None
    assert isinstance(backend, ScoreBackend)
