"""The one-file interface a pretrained folder ships for stock SpeechBrain.

SpeechBrain's ``foreign_class(source, pymodule_file, classname)`` fetches
one Python file of the folder and imports it before it reads the yaml; the
file is linked or copied alone into a save folder, so it cannot import its
siblings. :func:`write_bundle` therefore writes one self-contained file,
generated from the installed package's own sources: the source text of
every ``unipool_lobes`` module the folder needs (the modules its yaml names
in ``!new:``/``!name:`` tags and :mod:`unipool_lobes.inference.speaker`,
with every ``unipool_lobes`` module they import, found with :mod:`ast`,
the packages above them included). On import, the file serves those
sources as the ``unipool_lobes`` package through a ``sys.meta_path``
finder, but only when no ``unipool_lobes`` can be imported (an installed
one is used as it is), and gives ``SpeakerVerifier``. The yaml's tags stay
``unipool_lobes.*`` paths, so the same folder loads with
``SpeakerVerifier.from_hparams`` too.

Authors
 * unipool-sv developers 2026
"""

import ast
import importlib
import importlib.util
import pathlib
import re

from unipool_lobes.utils.safe_io import write_text_atomic

__all__ = [
    "BUNDLE_FILE",
    "BUNDLE_ROOTS",
    "bundle_source",
    "module_closure",
    "tagged_modules",
    "write_bundle",
]

# The file name a model card passes as ``pymodule_file``.
BUNDLE_FILE = "unipool_speaker.py"

# Modules every bundle holds, besides those the yaml names.
BUNDLE_ROOTS = ("unipool_lobes.inference.speaker",)

_PACKAGE = "unipool_lobes"

_TAG = re.compile(r"!(?:new|name|apply|module):(unipool_lobes(?:\.\w+)+)")

_LOADER = '''
import importlib.abc
import importlib.util
import linecache
import sys


class _BundledModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the sources above as the unipool_lobes package."""

    def find_spec(self, fullname, path=None, target=None):
        """The spec of a bundled module, or None."""
        if fullname not in _SOURCES:
            return None
        return importlib.util.spec_from_loader(
            fullname, self, is_package=_SOURCES[fullname][0]
        )

    def create_module(self, spec):
        """The default module creation."""
        return None

    def exec_module(self, module):
        """Runs a bundled module's source in its namespace."""
        is_package, source = _SOURCES[module.__name__]
        name = module.__name__.replace(".", "/")
        name += "/__init__.py" if is_package else ".py"
        filename = f"{__file__}::{name}"
        linecache.cache[filename] = (
            len(source), None, source.splitlines(True), filename
        )
        module.__file__ = filename
        exec(compile(source, filename, "exec"), module.__dict__)

    def get_source(self, fullname):
        """A bundled module's source (tracebacks, inspect)."""
        return _SOURCES[fullname][1]


if importlib.util.find_spec("unipool_lobes") is None:
    sys.meta_path.append(_BundledModules())

from unipool_lobes.inference.speaker import SpeakerVerifier  # noqa: E402

__all__ = ["SpeakerVerifier"]
'''


def tagged_modules(yaml_text):
    """The ``unipool_lobes`` modules a yaml's tags name.

    Arguments
    ---------
    yaml_text : str
        A HyperPyYAML text.

    Returns
    -------
    list of str
        The modules (their current names, for a tag with an old path),
        sorted, each once.

    Example
    -------
    >>> text = '''
    ... model: !new:unipool_lobes.models.unipool.UniPool
    ... hook: !name:unipool_lobes.inference.speaker.load_state_dict_strict
    ... '''
    >>> tagged_modules(text)
    ['unipool_lobes.inference.speaker', 'unipool_lobes.models.unipool']
    """
    modules = set()
    for path in _TAG.findall(yaml_text):
        parts = path.split(".")
        for end in range(len(parts), 0, -1):
            name = ".".join(parts[:end])
            if _find_spec(name) is not None:
                # An old path (``unipool_lobes._moved``) gives the module
                # of its new name.
                modules.add(importlib.import_module(name).__name__)
                break
    return sorted(modules)


def module_closure(roots):
    """The ``unipool_lobes`` modules ``roots`` need, with their packages.

    Every ``import`` statement of a module counts, at its top level or
    inside a function (a lazy import must work from the bundle as well).

    Arguments
    ---------
    roots : iterable of str
        Module names.

    Returns
    -------
    dict
        Module name -> path of its source file, sorted by name.

    Example
    -------
    >>> closure = module_closure(["unipool_lobes.nnet.masking"])
    >>> list(closure)[:2]
    ['unipool_lobes', 'unipool_lobes._moved']
    >>> "unipool_lobes.nnet" in closure
    True
    """
    found, todo = {}, list(roots)
    while todo:
        name = todo.pop()
        if name in found or not _in_package(name):
            continue
        spec = _find_spec(name)
        if spec is None or not str(spec.origin or "").endswith(".py"):
            continue
        found[name] = pathlib.Path(spec.origin)
        parts = name.split(".")
        todo += [".".join(parts[:end]) for end in range(1, len(parts))]
        is_package = spec.submodule_search_locations is not None
        todo += _imported_names(name, found[name], is_package)
    return dict(sorted(found.items()))


def bundle_source(roots):
    """The text of the one-file interface holding the modules of ``roots``.

    Arguments
    ---------
    roots : iterable of str
        The modules the folder needs (:data:`BUNDLE_ROOTS` is added).

    Returns
    -------
    str
        Python source: the modules' sources, the finder, ``SpeakerVerifier``.

    Example
    -------
    >>> text = bundle_source([])
    >>> "'unipool_lobes.inference.speaker': (False," in text
    True
    >>> compile(text, "bundle.py", "exec") is not None
    True
    """
    closure = module_closure([*BUNDLE_ROOTS, *roots])
    lines = [
        '"""SpeakerVerifier of a unipool-sv model folder, in one file.',
        "",
        "Generated by ``unipool-sv export`` from the unipool_lobes package"
        f" {_package_version()}; do not edit.",
        f"It holds the sources of the {len(closure)} unipool_lobes",
        "modules the folder needs and serves them as the unipool_lobes",
        "package when none is installed, so that SpeechBrain's",
        "foreign_class(source=<folder>,",
        f'pymodule_file="{BUNDLE_FILE}", classname="SpeakerVerifier") loads',
        "the folder with speechbrain, torch and transformers only.",
        '"""',
        "",
        "_SOURCES = {",
    ]
    for name, path in closure.items():
        is_package = path.name == "__init__.py"
        source = path.read_text(encoding="utf-8")
        lines.append(f"    {name!r}: ({is_package}, {source!r}),")
    lines.append("}")
    return "\n".join(lines) + "\n" + _LOADER


def write_bundle(folder, yaml_text):
    """Writes :data:`BUNDLE_FILE` into a pretrained folder (atomically).

    Arguments
    ---------
    folder : str or os.PathLike
        The folder.
    yaml_text : str
        Its ``hyperparams.yaml`` (the modules its tags name are bundled).

    Returns
    -------
    pathlib.Path
        The file written.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> text = "model: !new:unipool_lobes.models.mean_pool.LayerMeanPool"
    >>> path = write_bundle(folder, text)
    >>> "'unipool_lobes.models.mean_pool': (False," in path.read_text()
    True
    """
    path = pathlib.Path(folder) / BUNDLE_FILE
    write_text_atomic(path, bundle_source(tagged_modules(yaml_text)))
    return path


def _in_package(name):
    """Whether a module name is ``unipool_lobes`` or inside it."""
    return name == _PACKAGE or name.startswith(_PACKAGE + ".")


def _find_spec(name):
    """``importlib.util.find_spec``, or None for a name that is no module."""
    try:
        return importlib.util.find_spec(name)
    except (ImportError, AttributeError, ValueError):
        return None


def _imported_names(name, path, is_package):
    """The absolute names every import statement of a module may import.

    ``from a import b`` gives ``a`` and ``a.b`` (``b`` may be a module).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = f"{base}.{module}" if module else base
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]
    return [name for name in names if _in_package(name)]


def _package_version():
    """The installed distribution's version, or ``(version unknown)``."""
    try:
        from importlib.metadata import version

        return version("unipool-sv")
    except Exception:  # noqa: BLE001 (a source checkout: no metadata)
        return "(version unknown)"
