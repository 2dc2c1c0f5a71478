"""Fault injection for the multi-process tests, loaded at interpreter start.

``tests/processes.py`` puts this folder first on ``PYTHONPATH``; Python then
imports this module in every process it starts (torchrun's workers too).
With ``UNIPOOL_TEST_SLOW_RANK=R`` the process of rank R (``RANK``, 0 outside
torchrun) waits ``UNIPOOL_TEST_SLOW_SECONDS`` before every file write and
rename it makes: opening a file for writing, ``os.open`` with a write flag,
``os.replace``, ``os.rename`` and ``torch.save`` (only for paths under
``UNIPOOL_TEST_SLOW_UNDER`` when it is set). A process that lists a
folder just after another one wrote into it then sees the old content, as on
a loaded machine or a network file system.
"""

import builtins
import functools
import importlib.abc
import io
import os
import sys
import time

_RANK = os.environ.get("RANK", "0")
_SLOW_RANK = os.environ.get("UNIPOOL_TEST_SLOW_RANK")
_DELAY = float(os.environ.get("UNIPOOL_TEST_SLOW_SECONDS", "0.3"))
_UNDER = os.environ.get("UNIPOOL_TEST_SLOW_UNDER", "")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND


def _under(*args, **kwargs):
    """Whether a path argument lies under ``UNIPOOL_TEST_SLOW_UNDER``."""
    paths = [a for a in args[:2] if isinstance(a, str | os.PathLike)]
    return any(os.fspath(path).startswith(_UNDER) for path in paths)


def _delayed(function, is_write=lambda *args, **kwargs: True):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if is_write(*args, **kwargs) and _under(*args, **kwargs):
            time.sleep(_DELAY)
        return function(*args, **kwargs)

    return wrapper


def _open_writes(file, mode="r", *args, **kwargs):
    return isinstance(mode, str) and any(c in mode for c in "wax+")


def _os_open_writes(path, flags, *args, **kwargs):
    return bool(flags & _WRITE_FLAGS)


class _PatchTorchSave(importlib.abc.MetaPathFinder):
    """Wraps ``torch.save`` once torch is imported."""

    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("torch")
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module):
            original_exec(module)
            module.save = _delayed(module.save)

        loader.exec_module = exec_module
        return spec


if _SLOW_RANK is not None and _SLOW_RANK == _RANK:
    import importlib.util

    builtins.open = io.open = _delayed(builtins.open, _open_writes)
    os.open = _delayed(os.open, _os_open_writes)
    os.replace = _delayed(os.replace)
    os.rename = _delayed(os.rename)
    sys.meta_path.insert(0, _PatchTorchSave())
