"""Inference: the ``SpeakerVerifier`` interface, export and the command.

``speaker`` (:class:`~unipool_lobes.inference.speaker.SpeakerVerifier`),
``audio`` (reading, checking, padding), ``loading`` (strict loading,
``load_state_dict_strict``...); ``export`` (pretrained folders) with
``run_folder`` (best checkpoint), ``pretrained_yaml`` and ``model_card``;
``cli`` (the ``unipool-sv`` command) with ``cli_arguments``,
``cli_commands``, ``cli_score`` and ``cli_lists``. ``speaker``, ``export``
and ``cli`` still give every name they held before.

SpeechBrain home: ``speechbrain/inference/speaker.py``; export and the
command would stay in the recipe folder.

``unipool_lobes.inference`` was a module before version 0.2: its names
(``from unipool_lobes.inference import SpeakerVerifier``, and
``unipool_lobes.inference.load_state_dict_strict`` in the hyperparams of
folders exported before) are still given here, from
:mod:`unipool_lobes.inference.speaker`, with a ``DeprecationWarning``.
"""

from unipool_lobes._moved import forward_old_names

__getattr__ = forward_old_names(
    __name__, ("speaker", "export", "cli"), globals()
)
