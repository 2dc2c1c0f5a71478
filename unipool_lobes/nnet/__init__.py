"""Neural-network building blocks shared by every model.

``masking`` (relative lengths to frame masks, batch normalisation over the
valid frames only: every backend and front-end uses it), ``losses``
(sub-centre classifier, inter-top-k AAM loss, margin ramp), ``spanout``
(span-out of random frame spans).

SpeechBrain home: ``speechbrain/nnet/`` (``losses.py``, ``normalization.py``).
"""
