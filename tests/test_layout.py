"""The package layout by role and the old import paths kept for one release.

Every module that moved (``unipool_lobes._moved``) still imports under its
old name, as the very module of its new name, with a DeprecationWarning
naming the new path; yamls written with old paths still load; the recipes
and docs name only new paths; ``unipool_lobes`` never imports ``data_prep``.
"""

import ast
import importlib
import pathlib
import pickle
import re
import sys
import warnings

import processes
import pytest
from hyperpyyaml import load_hyperpyyaml

from unipool_lobes import _moved

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "unipool_lobes"

# Files that name old paths on purpose: the map, its docs, this test.
OLD_PATHS_ALLOWED = {
    "ARCHITECTURE.md",
    "tests/test_inference.py",  # loads a folder exported before
    "tests/test_layout.py",
    "unipool_lobes/__init__.py",
    "unipool_lobes/_moved.py",
    "unipool_lobes/inference/__init__.py",
    "unipool_lobes/scoring/__init__.py",
}


def _import_fresh(name):
    """Imports ``name`` as a first import would, returning its warnings."""
    sys.modules.pop(name, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(name)
    return module, [w for w in caught if w.category is DeprecationWarning]


@pytest.mark.parametrize("old", sorted(_moved.MOVED_MODULES))
def test_old_module_name_is_the_new_module_and_warns(old):
    """``import unipool_lobes.ssl`` gives unipool_lobes.frontends.ssl."""
    new = _moved.MOVED_MODULES[old]
    module, caught = _import_fresh(old)
    assert module is importlib.import_module(new)
    assert module.__name__ == new and module.__spec__.name == new
    assert len(caught) == 1 and new in str(caught[0].message)
    assert old in str(caught[0].message)


def test_every_module_file_is_mapped_or_new():
    """The map names real modules, and no two old names share a new one."""
    for new in _moved.MOVED_MODULES.values():
        assert importlib.util.find_spec(new) is not None, new
    assert len(set(_moved.MOVED_MODULES.values())) == len(_moved.MOVED_MODULES)
    flat = {p.stem for p in PACKAGE.glob("*.py")}
    assert flat == {"__init__", "_moved"}, "modules belong in a role folder"


def test_every_package_says_what_it_holds_and_its_speechbrain_home():
    """Each role folder has an ``__init__`` naming its SpeechBrain home."""
    for init in sorted(PACKAGE.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, init
        if init.parent != PACKAGE and init.parent.name != "unipool":
            assert "SpeechBrain home" in doc, init


def test_classes_agree_across_old_and_new_names():
    """isinstance and pickling see one class under both names."""
    from unipool_lobes.models.unipool import UniPool

    old, _ = _import_fresh("unipool_lobes.unipool")
    model = old.UniPool(input_size=8, num_layers=2, conv_channels=8)
    assert isinstance(model, UniPool)
    assert type(pickle.loads(pickle.dumps(model))) is UniPool


def test_unipool_masking_gives_masks_and_the_batch_norm():
    """The old module held both: its name gives both, with a warning."""
    from unipool_lobes.nnet import masking
    from unipool_lobes.training import batch_norm

    module, caught = _import_fresh("unipool_lobes.unipool_masking")
    assert module.frame_mask is masking.frame_mask
    assert module.masked_batch_norm is masking.masked_batch_norm
    assert module.ProcessGroupBatchNorm is batch_norm.ProcessGroupBatchNorm
    assert len(caught) == 1
    assert "unipool_lobes.training.batch_norm" in str(caught[0].message)


@pytest.mark.parametrize(
    ("package", "name", "new"),
    [
        (
            "unipool_lobes.inference",
            "SpeakerVerifier",
            "unipool_lobes.inference.speaker",
        ),
        (
            "unipool_lobes.inference",
            "load_state_dict_strict",
            "unipool_lobes.inference.speaker",
        ),
        ("unipool_lobes.scoring", "EER", "unipool_lobes.scoring.metrics"),
    ],
)
def test_old_modules_now_packages_forward_their_names(package, name, new):
    """``from unipool_lobes.inference import SpeakerVerifier`` still works."""
    module = importlib.import_module(package)
    vars(module).pop(name, None)  # forwarded once, then kept
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)
    (warning,) = [w for w in caught if w.category is DeprecationWarning]
    assert f"{new}.{name}" in str(warning.message)
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018
    # Submodules are imported, never forwarded.
    assert importlib.import_module(f"{package}.{new.rsplit('.', 1)[1]}")


def test_yaml_with_old_paths_still_loads():
    """An hparams file of before (``!new:unipool_lobes.unipool.UniPool``)."""
    from unipool_lobes.inference.speaker import load_state_dict_strict
    from unipool_lobes.models.unipool import UniPool
    from unipool_lobes.training.batch_norm import ProcessGroupBatchNorm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        hparams = load_hyperpyyaml(
            "model: !new:unipool_lobes.unipool.UniPool\n"
            "    input_size: 8\n"
            "    num_layers: 2\n"
            "    conv_channels: 8\n"
            "norm: !name:unipool_lobes.unipool_masking.ProcessGroupBatchNorm\n"
            "hook: !name:unipool_lobes.inference.load_state_dict_strict\n"
            "eer: !name:unipool_lobes.scoring.EER\n"
        )
    assert type(hparams["model"]) is UniPool
    assert hparams["norm"] is ProcessGroupBatchNorm
    assert hparams["hook"] is load_state_dict_strict


def _paths_named(text):
    return re.findall(r"unipool_lobes(?:\.\w+)+", text)


def _old_path_problem(dotted):
    """Why ``dotted`` goes through an old (moved) name, or None."""
    parts = dotted.split(".")
    folder = ROOT / parts[0]
    for index, part in enumerate(parts[1:], start=1):
        if (folder / part).is_dir():
            folder = folder / part
            continue
        if (folder / f"{part}.py").is_file():
            return None  # a module: what follows are its attributes
        package = ".".join(parts[:index])
        exported = getattr(importlib.import_module(package), "__all__", ())
        if part in exported:
            return None
        return f"{package} is a package: {part!r} is no module of it"
    return None


def _repository_files():
    skipped = {".git", ".venv", ".ruff_cache", "results", "__pycache__"}

    def _is_build_output(parts):
        # pip's metadata of an editable install (regenerated by pip).
        return any(part.endswith(".egg-info") for part in parts)

    return sorted(
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*")
        if p.is_file()
        and not skipped & set(p.relative_to(ROOT).parts)
        and not _is_build_output(p.relative_to(ROOT).parts)
    )


def test_recipes_and_docs_name_only_new_paths():
    """No yaml, script or doc names a moved module (but the map and its
    docs): new paths only, e.g. ``unipool_lobes.models.unipool.UniPool``."""
    problems = []
    for name in _repository_files():
        path = ROOT / name
        if name in OLD_PATHS_ALLOWED or path.is_symlink():
            continue
        if path.suffix not in {".py", ".yaml", ".md", ".txt"}:
            continue
        for dotted in set(_paths_named(path.read_text())):
            problem = _old_path_problem(dotted)
            if problem:
                problems.append(f"{name}: {dotted} ({problem})")
    assert not problems, "\n".join(sorted(problems))
    yamls = list((ROOT / "recipes").rglob("*.yaml"))
    assert yamls and all(
        _paths_named(p.read_text()) for p in yamls if "hparams" in p.parts
    )


def test_old_path_check_finds_old_paths():
    """The check above refuses each kind of old path."""
    assert _old_path_problem("unipool_lobes.unipool.UniPool")
    assert _old_path_problem("unipool_lobes.inference.SpeakerVerifier")
    assert _old_path_problem("unipool_lobes.scoring.EER")
    assert _old_path_problem("unipool_lobes.models.unipool.UniPool") is None
    assert _old_path_problem("unipool_lobes.scoring.metrics.EER") is None


def test_package_never_imports_data_prep():
    """Scoring reads trial lists itself: no import of ``data_prep``."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno}"
                for n in names
                if n.split(".")[0] == "data_prep"
            ]
    assert not offenders, offenders
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(
            ".__init__"
        )
        for p in PACKAGE.rglob("*.py")
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('data_prep')))\n"
    )
    out = processes.run(processes.python("-c", code), 300, check=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
