"""UniPool and the other multi-layer speaker-embedding lobes for SpeechBrain.

Modules
-------
ssl : the lengths-aware multi-layer front-end over HF speech models.
local_models : writes small local HF model folders for offline tests.
scoring : exact O(N log N) EER / minDCF, cosine trial scoring, DET points.
unipool : the UniPool backend lobe.
"""
