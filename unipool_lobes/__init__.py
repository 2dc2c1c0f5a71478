"""UniPool and the other multi-layer speaker-embedding lobes for SpeechBrain.

One subpackage per role, each mapping to one SpeechBrain home (see
ARCHITECTURE.md at the repository root):

models : the backends (``models.unipool`` with its blocks, LAP, MHFA,
    layer-weighted ECAPA, mean pooling, the baselines' ECAPA and SincNet)
    and the classifier head -> ``speechbrain/lobes/models/``.
nnet : frame masks and masked batch norm, losses, span-out
    -> ``speechbrain/nnet/``.
frontends : the multi-layer SSL wrapper, filterbank, MFCC and waveform
    front-ends -> ``speechbrain/lobes/features.py``,
    ``speechbrain/integrations/huggingface/``.
dataio : manifests, crops, augmentation, batching
    -> ``speechbrain/dataio/``, ``speechbrain/augment/``.
scoring : metrics, trial lists, score normalisation, calibration, plots
    -> ``speechbrain/utils/metric_stats.py``.
inference : ``SpeakerVerifier``, export, the ``unipool-sv`` command
    -> ``speechbrain/inference/speaker.py``.
training : checkpointer, schedulers, DDP helpers, process-group batch
    norm, run checks, seeding, ``init_from`` -> ``speechbrain/utils/``.
utils : atomic file writing, folder locks -> ``speechbrain/utils/``.

The flat module names of before (``unipool_lobes.unipool``,
``unipool_lobes.ssl``...) still import, with a ``DeprecationWarning``, for
one release (:mod:`unipool_lobes._moved`).
"""

from unipool_lobes import _moved

_moved.install()
