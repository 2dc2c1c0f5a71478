"""Scoring: metrics, trial lists, score normalisation, calibration, plots.

``metrics`` (exact EER, minDCF, Cllr, cosine and window-pair trial scoring,
DET points, scores files), ``trials`` (reading trial lists), ``score_norm``
(z/t/s-norm, AS-norm), ``calibration`` (the score back-end: cohort-mean
subtraction, QMF calibration), ``plots`` (DET and layer-significance).

SpeechBrain home: ``speechbrain/utils/metric_stats.py`` and the scoring
script of ``recipes/VoxCeleb/SpeakerRec/``.

``unipool_lobes.scoring`` was a module before version 0.2: its names
(``from unipool_lobes.scoring import EER``) are still given here, from
:mod:`unipool_lobes.scoring.metrics`, with a ``DeprecationWarning``.
"""

from unipool_lobes._moved import forward_old_names

__getattr__ = forward_old_names(
    __name__,
    ("metrics", "trials", "score_norm", "calibration", "plots"),
    globals(),
)
