"""The import paths of modules that moved, kept for one release.

Until version 0.2 the package was one flat folder (``unipool_lobes.unipool``,
``unipool_lobes.ssl``...). Its modules now live in one folder per role
(see ARCHITECTURE.md). Importing an old name gives the very module of the
new name (the same object, so ``isinstance``, pickling and hyperpyyaml
tags written with old paths agree) and emits a ``DeprecationWarning`` that
names the new path. Two old names are packages now,
``unipool_lobes.inference`` and ``unipool_lobes.scoring``: those packages
forward the old modules' names themselves (:func:`forward_old_names`).

``unipool_lobes.unipool_masking`` held both the frame masks (now
:mod:`unipool_lobes.nnet.masking`) and the process-group batch norm (now
:mod:`unipool_lobes.training.batch_norm`): its old name gives a small module
holding the names of both.

Authors
 * unipool-sv developers 2026
"""

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

# Old module name -> new module name (removed in version 0.2).
MOVED_MODULES = {
    "unipool_lobes.augment": "unipool_lobes.dataio.augment",
    "unipool_lobes.batching": "unipool_lobes.dataio.batching",
    "unipool_lobes.calibration": "unipool_lobes.scoring.calibration",
    "unipool_lobes.checkpoints": "unipool_lobes.training.checkpoints",
    "unipool_lobes.classifier": "unipool_lobes.models.classifier",
    "unipool_lobes.cli": "unipool_lobes.inference.cli",
    "unipool_lobes.cropping": "unipool_lobes.dataio.cropping",
    "unipool_lobes.distributed": "unipool_lobes.training.distributed",
    "unipool_lobes.ecapa_authors": "unipool_lobes.models.ecapa_authors",
    "unipool_lobes.export": "unipool_lobes.inference.export",
    "unipool_lobes.fbank_frontend": "unipool_lobes.frontends.fbank",
    "unipool_lobes.init_from": "unipool_lobes.training.init_from",
    "unipool_lobes.lap": "unipool_lobes.models.lap",
    "unipool_lobes.lap_authors": "unipool_lobes.models.lap_authors",
    "unipool_lobes.layer_weighted": "unipool_lobes.models.layer_weighted",
    "unipool_lobes.local_models": "unipool_lobes.frontends.local_models",
    "unipool_lobes.losses": "unipool_lobes.nnet.losses",
    "unipool_lobes.manifest": "unipool_lobes.dataio.manifest",
    "unipool_lobes.mean_pool": "unipool_lobes.models.mean_pool",
    "unipool_lobes.mfcc_frontend": "unipool_lobes.frontends.mfcc",
    "unipool_lobes.mhfa": "unipool_lobes.models.mhfa",
    "unipool_lobes.plots": "unipool_lobes.scoring.plots",
    "unipool_lobes.safe_io": "unipool_lobes.utils.safe_io",
    "unipool_lobes.schedulers": "unipool_lobes.training.schedulers",
    "unipool_lobes.score_norm": "unipool_lobes.scoring.score_norm",
    "unipool_lobes.seeding": "unipool_lobes.training.seeding",
    "unipool_lobes.sincnet": "unipool_lobes.models.sincnet",
    "unipool_lobes.spanout": "unipool_lobes.nnet.spanout",
    "unipool_lobes.ssl": "unipool_lobes.frontends.ssl",
    "unipool_lobes.training_checks": "unipool_lobes.training.checks",
    "unipool_lobes.unipool": "unipool_lobes.models.unipool.model",
    "unipool_lobes.unipool_authors": "unipool_lobes.models.unipool.authors",
    "unipool_lobes.unipool_blocks": "unipool_lobes.models.unipool.blocks",
    "unipool_lobes.unipool_pooling": "unipool_lobes.models.unipool.pooling",
    "unipool_lobes.waveform_frontend": "unipool_lobes.frontends.waveform",
}

# Old module name -> the new modules whose names it holds (a module of its
# own, since no single new module holds them all).
SPLIT_MODULES = {
    "unipool_lobes.unipool_masking": (
        "unipool_lobes.nnet.masking",
        "unipool_lobes.training.batch_norm",
    ),
}

# Old modules that are packages of the same name now: old -> the new module
# the package forwards the old names to.
PACKAGE_MODULES = {
    "unipool_lobes.inference": "unipool_lobes.inference.speaker",
    "unipool_lobes.scoring": "unipool_lobes.scoring.metrics",
}


def _warn(old, new):
    warnings.warn(
        f"{old} is deprecated and will be removed in unipool-sv 0.2: use {new}",
        DeprecationWarning,
        stacklevel=3,
    )


class _MovedLoader(importlib.abc.Loader):
    """Gives the new module (or the joined modules) for an old name."""

    def __init__(self, old):
        self.old = old
        self._spec = None

    def create_module(self, spec):
        """The module the old name stands for (imports the new ones)."""
        if self.old in MOVED_MODULES:
            new = MOVED_MODULES[self.old]
            _warn(self.old, new)
            module = importlib.import_module(new)
            # The import system sets ``__spec__`` on what this returns: the
            # new module keeps its own (exec_module puts it back).
            self._spec = module.__spec__
            return module
        news = SPLIT_MODULES[self.old]
        _warn(self.old, " or ".join(news))
        module = types.ModuleType(self.old, f"Deprecated: see {news}.")
        for new in news:
            for key, value in vars(importlib.import_module(new)).items():
                if not (key.startswith("__") and key.endswith("__")):
                    setattr(module, key, value)
        return module

    def exec_module(self, module):
        """Puts back the new module's own spec (nothing to execute)."""
        if self._spec is not None:
            module.__spec__ = self._spec


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder of the old module names."""

    def find_spec(self, fullname, path=None, target=None):
        """A spec for an old module name, None for any other name.

        Arguments
        ---------
        fullname : str
            The module name imported.
        path : list, optional
            The parent package's path (unused).
        target : module, optional
            Unused.

        Returns
        -------
        importlib.machinery.ModuleSpec or None
            The spec of the old name.
        """
        if fullname in MOVED_MODULES or fullname in SPLIT_MODULES:
            return importlib.util.spec_from_loader(
                fullname, _MovedLoader(fullname)
            )
        return None


def install():
    """Puts the finder of old module names on ``sys.meta_path`` (once).

    First, so that a stale copy of an old module (a file left in an older
    installation, an editable install of another checkout) is never
    imported instead of the new module.
    """
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())


def forward_old_names(package_name, submodules, namespace):
    """A module ``__getattr__`` giving the old module's names, with a warning.

    For a package whose name an old module had (``unipool_lobes.inference``,
    ``unipool_lobes.scoring``): ``from unipool_lobes.inference import
    SpeakerVerifier`` and hyperpyyaml tags such as
    ``!name:unipool_lobes.inference.load_state_dict_strict`` (written in the
    hyperparams of folders exported before) keep working.

    Arguments
    ---------
    package_name : str
        The package (and old module) name.
    submodules : iterable of str
        The package's own submodule names, never forwarded.
    namespace : dict
        The package's globals (a name forwarded once is kept there).

    Returns
    -------
    callable
        The ``__getattr__`` of the package.
    """
    new = PACKAGE_MODULES[package_name]
    submodules = frozenset(submodules)

    def __getattr__(name):
        if name.startswith("__") or name in submodules:
            raise AttributeError(
                f"module {package_name!r} has no attribute {name!r}"
            )
        module = importlib.import_module(new)
        try:
            value = getattr(module, name)
        except AttributeError:
            raise AttributeError(
                f"module {package_name!r} has no attribute {name!r}"
            ) from None
        _warn(f"{package_name}.{name}", f"{new}.{name}")
        # Warned once: later lookups find the name in the package.
        namespace[name] = value
        return value

    return __getattr__
