"""UniPool and the other multi-layer speaker-embedding lobes for SpeechBrain.

Modules
-------
ssl : the lengths-aware multi-layer front-end over HF speech models.
local_models : writes small local HF model folders for offline tests.
unipool : the UniPool backend lobe (blocks in ``unipool_blocks``,
    ``unipool_pooling``, ``unipool_masking``; the authors' checkpoint
    converter in ``unipool_authors``).
layer_weighted, mhfa, lap, mean_pool : the other multi-layer backends.
fbank_frontend, waveform_frontend, sincnet : front-ends and the SincNet
    lobe of the filterbank / waveform baselines.
scoring : exact O(N log N) EER / minDCF, cosine trial scoring, DET points.
score_norm : z-, t- and s-norm with per-utterance cohort statistics.
plots : DET curve and layer-significance plots.
checkpoints : a checkpointer whose checkpoints are never half-written,
    carry checksums, and are listed, written and deleted on rank 0 under DDP.
distributed : decisions taken on rank 0 and shared, outcome or error, with
    every process; the process group with a collective timeout.
safe_io : atomic writes honouring the umask, disk-full and read-only
    errors naming the path, one-process-per-folder locks.
training_checks : what a run checks before it starts (override types, the
    schedule, hyperparameters of a resumed run).
manifest, batching : manifest reading safe for ``$`` and byte-order marks;
    evaluation batches bounded by padded duration.
schedulers : learning-rate schedules missing from torch (tri-stage).
export, inference, cli : pretrained folders, the ``SpeakerVerifier``
    interface and the ``unipool-sv`` command.
"""
