"""SpeechBrain's own consistency checks, written for this repository.

SpeechBrain's CI runs ``tests/consistency`` (the recipe registry, yaml
against script, docstrings), its recipe-test runner, doctests under its
``pytest.ini`` flags, ``ruff`` with the configuration of its
``pyproject.toml`` and, through ``python_requires``, a minimum Python. The
same rules are written here (nothing of SpeechBrain's test code is copied),
each as a checker that returns its violations, so that a failure names them
and the checkers themselves are tested on small synthetic inputs:

* the registry: every recipe yaml has exactly one row in
  ``tests/recipes/<Dataset>.csv`` (SpeechBrain's columns), every row has
  ``test_debug_flags``, and every file a row names exists;
* the rows' runs, as SpeechBrain's runner makes them: the row's flags
  (``{name}`` placeholders filled with generated mini corpora and tiny
  local models) and ``--output_folder``, then the files of
  ``test_debug_checks``; once as a short run, once with the runner's
  ``--debug --debug_persistently``. One row per corpus runs by default
  (one debug run); all rows with ``UNIPOOL_ALL_RECIPE_ROWS=1``;
* the yaml-vs-script rule of ``tests/consistency/test_yaml.py``;
* the docstring rule of ``tests/consistency/test_docstrings.py``;
* doctests with SpeechBrain's ``doctest_optionflags`` (``ELLIPSIS`` only);
* ``ruff check`` and ``ruff format --check`` with SpeechBrain's settings;
* an ``extra_requirements.txt`` in every recipe folder;
* no syntax newer than SpeechBrain's minimum Python (``>=3.8.1``) in the
  modules meant for upstream (``unipool_lobes``).

Modules are found by walking the package folders, so the checks follow the
files wherever they live.

Authors
 * unipool-sv developers 2026
"""

import ast
import csv
import dataclasses
import doctest
import importlib
import os
import pathlib
import re
import shutil
import sys
import tempfile
import textwrap

import processes
import pytest
from packaging.requirements import InvalidRequirement, Requirement
from speechbrain.utils.run_opts import RunOptions

ROOT = pathlib.Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
REGISTRY = ROOT / "tests" / "recipes"
# The folders of code meant for SpeechBrain (its ``speechbrain/``,
# ``tools/``, ``templates/``) and of the data preparation.
LIBRARY_FOLDERS = ("unipool_lobes", "data_prep")
UPSTREAM_FOLDERS = ("unipool_lobes",)

# SpeechBrain's csv columns, in their order (tests/recipes/*.csv).
COLUMNS = [
    "Task",
    "Dataset",
    "Script_file",
    "Hparam_file",
    "Data_prep_file",
    "Readme_file",
    "Result_url",
    "HF_repo",
    "test_debug_flags",
    "test_debug_checks",
    "performance",
]
FILE_FIELDS = ["Script_file", "Hparam_file", "Data_prep_file", "Readme_file"]
MANDATORY_FIELDS = ["Script_file", "Hparam_file", "Readme_file"]
LINK_FIELDS = ["Result_url", "HF_repo"]
# Folders SpeechBrain's registry check leaves out (its ``avoid_list``).
NOT_RECIPE_YAMLS = ("/models/", "/results/", "/pretrained_models/")

# SpeechBrain 1.1.2: ``Requires-Python: >=3.8.1`` (its wheel's METADATA).
MIN_PYTHON = (3, 8)

# SpeechBrain's pytest.ini: ``doctest_optionflags= ELLIPSIS`` (ours adds
# NORMALIZE_WHITESPACE).
SB_DOCTEST_FLAGS = doctest.ELLIPSIS

# SpeechBrain's ruff settings (its pyproject.toml, ruff 0.12.4), with our
# packages as the first party (``speechbrain`` is theirs).
SB_RUFF_CONFIG = """\
target-version = "py38"
line-length = 80
exclude = [".eggs", ".git", ".mypy_cache", ".tox", ".venv", "tests/tmp",
           "results"]

[lint]
select = ["E", "W", "F", "I", "B", "C4", "UP"]
ignore = [
    "B007", "B904", "B028", "C400", "C401", "C403", "C404", "C405", "C408",
    "C409", "C414", "C416", "C417", "C419", "E203", "E266", "E501", "E721",
    "F601", "UP008", "UP028", "UP030", "UP031", "B008", "B006", "B011",
    "B019", "B023", "B026",
]

[lint.isort]
combine-as-imports = true
force-wrap-aliases = true
known-first-party = ["unipool_lobes", "data_prep"]
known-third-party = ["torch", "torchaudio", "numpy", "scipy", "hyperpyyaml",
    "joblib", "packaging", "requests", "sentencepiece", "tqdm",
    "huggingface_hub"]
split-on-trailing-comma = false

[lint.per-file-ignores]
"__init__.py" = ["F401"]

[format]
quote-style = "double"
indent-style = "space"
skip-magic-trailing-comma = false
line-ending = "auto"
docstring-code-format = true
"""


def _tool(name):
    """The path of a console script installed beside this Python."""
    local = pathlib.Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def library_files(root=ROOT, folders=LIBRARY_FOLDERS):
    """Every ``.py`` file under the given package folders, sorted.

    Arguments
    ---------
    root : pathlib.Path
        The repository.
    folders : tuple
        Folder names relative to ``root``.

    Returns
    -------
    list
        Paths.
    """
    found = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found.append(path)
    return found


def module_name(path, root=ROOT):
    """``unipool_lobes/models/lap.py`` -> ``unipool_lobes.models.lap``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


# --------------------------------------------------------------------------
# 1. The recipe registry (tests/consistency/test_recipe.py)
# --------------------------------------------------------------------------


def read_registry(registry=REGISTRY):
    """The rows of every ``<Dataset>.csv`` of the registry.

    Arguments
    ---------
    registry : pathlib.Path
        The folder of the csv files.

    Returns
    -------
    dict
        ``csv file name -> (header, rows)``.
    """
    tables = {}
    for path in sorted(registry.glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle, skipinitialspace=True)
            tables[path.name] = (reader.fieldnames, list(reader))
    return tables


def registry_errors(root=ROOT, registry=REGISTRY):
    """Violations of SpeechBrain's registry rules, one line each.

    Every yaml under ``recipes/<Dataset>/`` (SpeechBrain searches the
    dataset's whole folder) must be the ``Hparam_file`` of exactly one row
    of ``<Dataset>.csv`` (SpeechBrain only asks for at least one), every
    row must have ``test_debug_flags``, every file a row names must exist
    (space-separated lists allowed), the mandatory files must be given, and
    the README must contain the row's ``Result_url`` and ``HF_repo``.

    Arguments
    ---------
    root : pathlib.Path
        The repository (paths in the csv files are relative to it).
    registry : pathlib.Path
        The folder of the csv files.

    Returns
    -------
    list
        Error messages (empty when all is well).
    """
    errors = []
    tables = read_registry(registry)
    datasets = sorted(
        p.name for p in (root / "recipes").iterdir() if p.is_dir()
    )
    for dataset in datasets:
        if f"{dataset}.csv" not in tables:
            errors.append(f"recipes/{dataset}: no tests/recipes/{dataset}.csv")
    for name, (header, rows) in tables.items():
        dataset = name[: -len(".csv")]
        if header != COLUMNS:
            errors.append(f"{name}: columns {header}, expected {COLUMNS}")
            continue
        listed = [row["Hparam_file"].strip() for row in rows]
        for yaml_path in sorted((root / "recipes" / dataset).rglob("*.yaml")):
            relative = yaml_path.relative_to(root).as_posix()
            if any(part in f"/{relative}" for part in NOT_RECIPE_YAMLS):
                continue
            count = listed.count(relative)
            if count != 1:
                errors.append(f"{name}: {relative} has {count} rows, not 1")
        for number, row in enumerate(rows, start=1):
            where = f"{name} row {number} ({row['Hparam_file']})"
            if not (row["test_debug_flags"] or "").strip():
                errors.append(f"{where}: no test_debug_flags")
            for field in MANDATORY_FIELDS:
                if not (row[field] or "").strip():
                    errors.append(f"{where}: no {field}")
            for field in FILE_FIELDS:
                for listed_file in (row[field] or "").split():
                    if not (root / listed_file).exists():
                        errors.append(f"{where}: {field} {listed_file} missing")
            readme = root / (row["Readme_file"] or "").strip()
            if readme.is_file():
                text = readme.read_text(encoding="utf-8")
                for field in LINK_FIELDS:
                    for link in (row[field] or "").split():
                        if link not in text:
                            errors.append(f"{where}: {link} not in {readme}")
    return errors


def test_registry_lists_every_recipe_yaml_once_and_its_files_exist():
    """tests/recipes/<Dataset>.csv: one row per yaml, every file there."""
    assert len(read_registry()) == 3
    assert registry_errors() == []


def _write_mini_repo(root, rows=None):
    """A repository with one recipe, its yaml, script, readme and csv."""
    hparams = root / "recipes" / "Corpus" / "hparams"
    hparams.mkdir(parents=True)
    (hparams / "a.yaml").write_text("seed: 1\n")
    (root / "recipes" / "Corpus" / "train.py").write_text('"""S."""\n')
    (root / "recipes" / "Corpus" / "README.md").write_text("Readme\n")
    registry = root / "tests" / "recipes"
    registry.mkdir(parents=True)
    base = {
        "Task": "Speaker_recognition",
        "Dataset": "Corpus",
        "Script_file": "recipes/Corpus/train.py",
        "Hparam_file": "recipes/Corpus/hparams/a.yaml",
        "Data_prep_file": "",
        "Readme_file": "recipes/Corpus/README.md",
        "Result_url": "",
        "HF_repo": "",
        "test_debug_flags": "--seed=2",
        "test_debug_checks": "file_exists=[train_log.txt]",
        "performance": "",
    }
    rows = [base] if rows is None else [{**base, **row} for row in rows]
    with open(registry / "Corpus.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return registry


def test_registry_check_bites(tmp_path):
    """An unlisted yaml, a doubly listed one, a missing file, missing
    flags and a link absent from the README are each reported."""
    registry = _write_mini_repo(tmp_path)
    assert registry_errors(tmp_path, registry) == []
    (tmp_path / "recipes/Corpus/hparams/b.yaml").write_text("seed: 1\n")
    errors = registry_errors(tmp_path, registry)
    assert errors == [
        "Corpus.csv: recipes/Corpus/hparams/b.yaml has 0 rows, not 1"
    ]

    other = tmp_path / "other"
    other.mkdir()
    registry = _write_mini_repo(
        other,
        rows=[
            {},
            {
                "Data_prep_file": "data_prep/gone.py",
                "test_debug_flags": "",
                "HF_repo": "https://huggingface.co/x/y",
            },
        ],
    )
    errors = registry_errors(other, registry)
    assert any("a.yaml has 2 rows" in e for e in errors), errors
    assert any("data_prep/gone.py missing" in e for e in errors), errors
    assert any("no test_debug_flags" in e for e in errors), errors
    assert any("huggingface.co/x/y not in" in e for e in errors), errors


# --------------------------------------------------------------------------
# 2. The rows' debug runs (tests/utils/recipe_tests.py)
# --------------------------------------------------------------------------

# One row per corpus and backend family (SSL multi-layer, SSL fine-tuned,
# filterbank, waveform) runs by default; all rows under the variable.
DEFAULT_ROWS = {
    "recipes/VCTK/hparams/unipool_vctk.yaml",
    "recipes/LibriSpeech/hparams/ecapa_librispeech.yaml",
    "recipes/VoxCeleb/hparams/lap_vox1.yaml",
}
ALL_ROWS = os.environ.get("UNIPOOL_ALL_RECIPE_ROWS") == "1"
# SpeechBrain's runner adds these when a row has no performance_check.
DEBUG_FLAGS = ["--debug", "--debug_persistently"]
SOTA_GROUPS_VOX2_DEV = [f"id000{n}" for n in (12, 15, 16, 18, 19, 20)]


def registry_rows():
    """Every row of the registry, in file order."""
    return [row for _, rows in read_registry().values() for row in rows]


def debug_command(row, placeholders, output_folder):
    """The command SpeechBrain's runner composes for a row.

    ``python <Script_file> <Hparam_file> <test_debug_flags>
    --output_folder=<folder> --debug --debug_persistently`` (the last two
    only without a ``performance_check``). The row's ``{name}`` fields are
    filled from ``placeholders`` (the generated corpora and model).

    Arguments
    ---------
    row : dict
        A registry row.
    placeholders : dict
        Values of the ``{name}`` fields of the flags.
    output_folder : pathlib.Path
        The run's folder.

    Returns
    -------
    list
        The command.
    """
    values = {**placeholders, "output_folder": str(output_folder)}
    flags = row["test_debug_flags"].format_map(values).split()
    command = [
        sys.executable,
        str(ROOT / row["Script_file"]),
        str(ROOT / row["Hparam_file"]),
        *flags,
        f"--output_folder={output_folder}",
        "--device=cpu",
    ]
    if "performance_check" not in row["test_debug_checks"]:
        command += DEBUG_FLAGS
    return command


def missing_checked_files(checks, output_folder):
    """Files of a row's ``file_exists=[...]`` absent from its run folder.

    Arguments
    ---------
    checks : str
        The row's ``test_debug_checks``.
    output_folder : pathlib.Path
        The run's folder.

    Returns
    -------
    list
        The missing files.
    """
    match = re.search(r"file_exists=\[(.*?)\]", checks)
    names = match.group(1).split(",") if match else []
    return [n for n in names if not (output_folder / n.strip()).exists()]


def test_missing_checked_files_bites(tmp_path):
    """A file named in ``file_exists`` and absent is reported."""
    (tmp_path / "train_log.txt").write_text("")
    checks = "file_exists=[train_log.txt,log.txt]"
    assert missing_checked_files(checks, tmp_path) == ["log.txt"]


@pytest.fixture(scope="module")
def placeholders(tmp_path_factory):
    """Mini VCTK, LibriSpeech, VoxCeleb (and MUSAN, RIRs for all rows),
    prepared once, and tiny local SSL models: the rows' ``{name}``s."""
    from mini_voxceleb_setup import (
        GROUPS,
        TRIALS_PER_CLASS,
        write_corpus_and_lists,
    )

    from data_prep.librispeech import prepare_librispeech
    from data_prep.mini_corpus import write_mini_librispeech, write_mini_vctk
    from data_prep.vctk import prepare_vctk
    from data_prep.voxceleb import prepare_voxceleb

    local_models = _import_by_suffix("local_models")
    root = tmp_path_factory.mktemp("speechbrain_rows")
    values = {
        "tiny_wav2vec2": local_models.write_local_model(
            str(root / "tiny-wav2vec2"), family="wav2vec2", size="tiny", seed=1
        ),
    }
    seed = 42  # the yamls' seed: the preparations below are reused
    vctk = write_mini_vctk(
        str(root / "VCTK"), n_speakers=24, utterances_per_speaker=6, seed=1
    )
    prepare_vctk(
        vctk, str(root / "vctk_prep"), split_source="generate", seed=seed
    )
    values.update(vctk_data_folder=vctk, vctk_prep_folder=root / "vctk_prep")
    libri = write_mini_librispeech(
        root / "LibriSpeech",
        n_speakers=8,
        chapters_per_speaker=2,
        utterances_per_chapter=2,
        duration_range=(1.0, 2.0),
        seed=2,
    )
    prepare_librispeech(
        libri,
        str(root / "libri_prep"),
        split_source="generate",
        seed=seed,
        train_subsets=["train-clean-100"],
        valid_subsets=["dev-clean"],
        test_subsets=["test-clean"],
    )
    values.update(
        librispeech_data_folder=libri,
        librispeech_prep_folder=root / "libri_prep",
    )
    groups = {**GROUPS, "vox2-dev": SOTA_GROUPS_VOX2_DEV}
    folders, lists = write_corpus_and_lists(root / "vox", groups)
    values.update(voxceleb_data_folder=folders, voxceleb_paper_lists=lists)
    for setting, eh_trials in (("vox1", None), ("vox2", "auto")):
        if setting == "vox2" and not ALL_ROWS:
            break
        prepare_voxceleb(
            folders,
            str(root / f"{setting}_prep"),
            setting=setting,
            paper_lists=str(lists),
            vox1_eh_trials=eh_trials,
            seed=seed,
            n_vox2_trials_per_class=TRIALS_PER_CLASS,
            num_workers=1,
        )
        values[f"{setting}_prep_folder"] = root / f"{setting}_prep"
        values[f"{setting}_train_speakers"] = len(groups[f"{setting}-dev"])
    if ALL_ROWS:
        from data_prep.mini_noise import write_mini_musan, write_mini_rirs

        speech = sorted((root / "vox").rglob("*.wav"))[:8]
        values.update(
            musan_folder=write_mini_musan(
                root / "noise", [str(p) for p in speech], seed=1
            ),
            rirs_folder=write_mini_rirs(root / "noise", seed=2),
            noise_prep_folder=root / "noise_prep",
            vox2_sota_prep_folder=root / "vox2_sota_prep",
            tiny_wavlm=local_models.write_local_model(
                root / "tiny-wavlm", family="wavlm", size="tiny", seed=3
            ),
        )
    values["runs"] = root / "runs"
    return values


def _import_by_suffix(suffix):
    """Imports the one module of unipool_lobes named ``*.<suffix>``."""
    names = [
        module_name(p)
        for p in library_files(folders=UPSTREAM_FOLDERS)
        if p.stem == suffix
    ]
    assert len(names) == 1, names
    return importlib.import_module(names[0])


def _row_id(row):
    return pathlib.Path(row["Hparam_file"]).stem


# By default (the suite's time) one row per corpus runs once: VoxCeleb
# and LibriSpeech as short runs, VCTK as the runner's ``--debug`` run (the
# other corpus tests train every yaml already); every row both ways with
# UNIPOOL_ALL_RECIPE_ROWS=1.
DEBUG_DEFAULT = "recipes/VCTK/hparams/unipool_vctk.yaml"
ROWS = [
    row
    for row in registry_rows()
    if ALL_ROWS or (row["Hparam_file"] in DEFAULT_ROWS - {DEBUG_DEFAULT})
]
DEBUG_ROWS = [
    row
    for row in registry_rows()
    if ALL_ROWS or row["Hparam_file"] == DEBUG_DEFAULT
]


def run_row(row, placeholders, debug):
    """Runs a row as SpeechBrain's runner does; returns its folder.

    Arguments
    ---------
    row : dict
        A registry row.
    placeholders : dict
        The fixture's ``{name}`` values.
    debug : bool
        Add ``--debug --debug_persistently`` (the runner does, for rows
        without a ``performance_check``).

    Returns
    -------
    pathlib.Path
        The run's output folder.
    """
    runs = placeholders["runs"]
    suffix = "debug" if debug else "short"
    output_folder = runs / f"{_row_id(row)}_{suffix}"
    values = dict(placeholders)
    for phase in (1, 2):
        previous = re.sub(r"phase\d$", f"phase{phase}", _row_id(row))
        values[f"output_folder_of_phase{phase}"] = str(
            runs / f"{previous}_{suffix}"
        )
    command = debug_command(row, values, output_folder)
    if not debug:
        command = [c for c in command if c not in DEBUG_FLAGS]
    # One thread per run: the suite shares a few cores.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cwd = ROOT / pathlib.Path(row["Script_file"]).parent
    processes.run(command, 300, check=True, cwd=cwd, env=env)
    return output_folder


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_row_runs_with_its_flags(row, placeholders):
    """The row's flags make a short run (without ``--debug``) whose folder
    holds the files of ``test_debug_checks``."""
    output_folder = run_row(row, placeholders, debug=False)
    missing = missing_checked_files(row["test_debug_checks"], output_folder)
    assert not missing, f"{row['Hparam_file']}: missing {missing}"


@pytest.mark.parametrize("row", DEBUG_ROWS, ids=_row_id)
def test_row_debug_run(row, placeholders):
    """SpeechBrain's runner: the row's flags, ``--output_folder`` and
    ``--debug --debug_persistently``, then ``test_debug_checks``."""
    output_folder = run_row(row, placeholders, debug=True)
    missing = missing_checked_files(row["test_debug_checks"], output_folder)
    assert not missing, f"{row['Hparam_file']}: missing {missing}"


def test_default_rows_are_in_the_registry():
    """The default subset names registry rows (a renamed yaml fails)."""
    listed = {row["Hparam_file"] for row in registry_rows()}
    assert DEFAULT_ROWS <= listed


# --------------------------------------------------------------------------
# 3. yaml against script (tests/consistency/test_yaml.py)
# --------------------------------------------------------------------------

PRETRAINER = "speechbrain.utils.parameter_transfer.Pretrainer"


def sb_yaml_variables(text):
    """The yaml's variables that the script must use, by SpeechBrain's rule.

    A line (not a comment, not a Pretrainer line) with a ``:`` or ``!ref``
    declares what stands before its first ``:`` when that starts in column
    0 and the line has no ``!!`` and no ``!apply``. A ``<name>`` on a
    ``!ref`` line (``<name[key]>`` included) uses a variable declared on an
    earlier line: it is then dropped from the list.

    Arguments
    ---------
    text : str
        The yaml.

    Returns
    -------
    list
        The variables left for the script to use.
    """
    declared = []
    for line in text.splitlines(keepends=True):
        if len(line) <= 1 or line.startswith("#") or PRETRAINER in line:
            continue
        line = line.rstrip()
        if ":" not in line and "!ref" not in line:
            continue
        name = line[: line.find(":")]
        if not (name[:1] in (" ", "\t") or "!!" in line or "!apply" in line):
            declared.append(name)
        if "!ref" in line:
            for piece in line.split("<"):
                used = piece[: piece.find(">")].split("[")[0]
                if used in declared:
                    declared.remove(used)
    return declared


SB_ACCESSORS = ["hparams.", "modules.", 'attr(self.hparams, "', 'hparams.get("']


def sb_script_uses(script_text, names):
    """Which of ``names`` the script uses, by SpeechBrain's rule.

    A name is used when a line holds ``["name"]``, ``hparams.name``,
    ``modules.name``, ``attr(self.hparams, "name`` or ``hparams.get("name``
    (as substrings: ``hparams.lr`` is found in ``hparams.lr_schedule``),
    or matches one of its f-string patterns (``[f"{x}_name"]``,
    ``[f"name_{x}"]``, ``self.hparams, f"{x}name"``, ``['a{}b']``).

    Arguments
    ---------
    script_text : str
        The script.
    names : list
        The yaml's variables.

    Returns
    -------
    set
        The names used.
    """
    used = set()
    for line in script_text.splitlines():
        suffix = re.search(r"\[f.\{.*\}(.*).\]", line) or re.search(
            r"self\.hparams, f\"\{.*\}(.*)\"", line
        )
        prefix = re.search(r"\[f.(.*)\{.*\}.\]", line)
        template = re.search(r"\[.(.*){}(.*).\]", line)
        for name in names:
            if f'["{name}"]' in line:
                used.add(name)
            elif suffix is not None and suffix.group(1) in name:
                used.add(name)
            elif prefix is not None and prefix.group(1) in name:
                used.add(name)
            elif any(a + name in line for a in SB_ACCESSORS):
                used.add(name)
            elif template is not None:
                found = re.search(
                    template.group(1) + ".*" + template.group(2), name
                )
                if found is not None and found.group() == name:
                    used.add(name)
    return used


def run_option_names():
    """SpeechBrain's run options (and its extra ``rescoring_lm_scale``)."""
    fields = {f.name for f in dataclasses.fields(RunOptions)}
    return fields | set(RunOptions().as_dict()) | {"rescoring_lm_scale"}


BRAIN_BASE = ROOT / "unipool_lobes" / "training" / "brain.py"


def sb_unused_yaml_keys(yaml_path, script_path):
    """Top-level yaml variables neither used in the yaml nor the script.

    Arguments
    ---------
    yaml_path : pathlib.Path
        The hparams file.
    script_path : pathlib.Path
        The row's script (a symlink is followed, as ``open`` does).

    Returns
    -------
    list
        Unused variables, sorted.
    """
    names = sb_yaml_variables(pathlib.Path(yaml_path).read_text("utf-8"))
    # The script's Brain base class (the generic training machinery that
    # left the script) is read as part of it.
    script = pathlib.Path(script_path).read_text("utf-8")
    script += "\n" + BRAIN_BASE.read_text("utf-8")
    used = sb_script_uses(script, names)
    return sorted(set(names) - used - run_option_names())


@pytest.mark.parametrize("row", registry_rows(), ids=_row_id)
def test_yaml_variables_are_used_by_their_script(row):
    """SpeechBrain's yaml-vs-script rule, for every registry row."""
    unused = sb_unused_yaml_keys(
        ROOT / row["Hparam_file"], ROOT / row["Script_file"]
    )
    assert not unused, f"{row['Hparam_file']}: unused {unused}"


def test_yaml_rule_bites(tmp_path):
    """Unused keys are found; references, accessors and run options count
    as uses; a reference before the declaration does not."""
    yaml_path = tmp_path / "h.yaml"
    yaml_path.write_text(
        textwrap.dedent(
            """\
            # comment: not a key
            __set_seed: !apply:torch.manual_seed [1]
            seed: 1
            out: !ref results/<seed>
            lr: 0.1
            unused_key: 3
            early: !ref <late>
            late: 2
            models:
                a: 1
            device: cpu
            """
        )
    )
    script = tmp_path / "train.py"
    script.write_text(
        'x = hparams["out"]\ny = self.hparams.lr_scheduler\nm = modules.early\n'
    )
    # "lr" counts as used through the substring hparams.lr_scheduler;
    # "late" is referenced before its declaration, so it must be used in
    # the script; "device" is a run option.
    assert sb_unused_yaml_keys(yaml_path, script) == [
        "late",
        "models",
        "unused_key",
    ]


# --------------------------------------------------------------------------
# 4. Docstrings (tests/consistency/test_docstrings.py)
# --------------------------------------------------------------------------

DEF_LINE = re.compile(r"(def)\s(.*)\(.*\)\:")
CLASS_LINE = re.compile(r"(class)\s(.*)\:")


def sb_docstring_errors(text, where="<text>"):
    """Missing docstrings by SpeechBrain's line-based rule.

    The file's first code line must open a docstring (``"`` or ``r"``).
    After a line starting with ``def`` (after indentation: methods and
    nested functions too) whose ``def name(...):`` stands on that line, and
    whose name does not start with ``_``, and after every line starting
    with ``class`` and holding ``class name:`` (private classes too), the
    next code line must open a docstring. Blank lines, comments and lines
    holding ``>>>`` or ``...`` are skipped. So a ``def`` whose signature
    spans lines, or has a return annotation (``) -> T:``), is not checked.

    Arguments
    ---------
    text : str
        A Python source file.
    where : str
        Its name, for the messages.

    Returns
    -------
    list
        ``"<where>: module|function|class <name>"`` for each missing one.
    """
    errors = []
    pending = ("module", "")
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] == "#" or ">>>" in line or "..." in line:
            continue
        if pending is not None:
            if not (line[0] == '"' or line[:2] == 'r"'):
                kind, name = pending
                errors.append(f"{where}: {kind} {name}".rstrip())
            pending = None
            continue
        function = "".join(m.group(2) for m in DEF_LINE.finditer(line))
        if function and line[:3] == "def" and function[0] != "_":
            pending = ("function", function)
        klass = "".join(m.group(2) for m in CLASS_LINE.finditer(line))
        if klass and line[:5] == "class":
            pending = ("class", klass)
    return errors


def library_docstring_errors(root=ROOT, folders=LIBRARY_FOLDERS):
    """SpeechBrain's docstring rule over the library folders.

    SpeechBrain skips every path holding ``__`` (``__init__.py``).

    Arguments
    ---------
    root : pathlib.Path
        The repository.
    folders : tuple
        The folders checked.

    Returns
    -------
    list
        The violations.
    """
    errors = []
    for path in library_files(root, folders):
        relative = path.relative_to(root).as_posix()
        if "__" in relative:
            continue
        errors += sb_docstring_errors(path.read_text("utf-8"), relative)
    return errors


def test_every_public_function_and_class_has_a_docstring():
    """SpeechBrain's docstring rule over unipool_lobes/ and data_prep/."""
    errors = library_docstring_errors()
    assert not errors, f"{len(errors)} missing docstrings:\n" + "\n".join(
        errors
    )


def test_docstring_rule_bites():
    """Public functions, methods, nested functions and classes without a
    docstring are found; private ones and documented ones are not."""
    source = textwrap.dedent(
        '''\
        """Module."""


        def documented(x):
            """Yes."""


        def public(x):
            return x


        def _private(x):
            return x


        class Thing:
            """Documented."""

            def method(self):
                """Documented."""

                def nested():
                    return 1

                return nested

            def _hidden(self):
                return 2


        class Bare:
            x = 1


        class _Private:
            x = 1
        '''
    )
    assert sb_docstring_errors(source, "m.py") == [
        "m.py: function public",
        "m.py: function nested",
        "m.py: class Bare",
        "m.py: class _Private",
    ]
    assert sb_docstring_errors("import os\n", "m.py") == ["m.py: module"]


# --------------------------------------------------------------------------
# 5. Doctests under SpeechBrain's flags (pytest.ini)
# --------------------------------------------------------------------------


def doctest_failures(modules, optionflags=SB_DOCTEST_FLAGS, tmp_path=None):
    """Runs the doctests of the given modules with the given flags.

    ``getfixture("tmpdir")`` / ``getfixture("tmp_path")`` are given, as
    pytest's doctest plugin gives them.

    Arguments
    ---------
    modules : list
        Imported modules.
    optionflags : int
        ``doctest`` option flags.
    tmp_path : pathlib.Path, optional
        The folder the fixtures return.

    Returns
    -------
    list
        ``"<test name>: <first lines of the failure>"`` for each failing
        example.
    """
    failures = []
    finder = doctest.DocTestFinder()
    for module in modules:
        for number, test in enumerate(finder.find(module, module.__name__)):
            if not test.examples:
                continue
            # A fresh folder per docstring, as pytest gives each its own.
            folder = pathlib.Path(
                tempfile.mkdtemp(
                    prefix=f"{module.__name__}.{number}.", dir=tmp_path
                )
            )
            fixtures = {"tmpdir": folder, "tmp_path": folder}
            test.globs["getfixture"] = fixtures.__getitem__
            report = []
            runner = doctest.DocTestRunner(optionflags=optionflags)
            runner.run(test, out=report.append, clear_globs=True)
            if runner.failures:
                text = "".join(report)
                failures.append(
                    f"{test.name}: {runner.failures} failing\n"
                    + textwrap.indent(text[-1500:], "    ")
                )
    return failures


def test_doctests_pass_with_speechbrain_flags(tmp_path):
    """Every doctest of unipool_lobes/ and data_prep/ under ELLIPSIS only."""
    modules = [importlib.import_module(module_name(p)) for p in library_files()]
    failures = doctest_failures(modules, tmp_path=tmp_path)
    assert not failures, "\n".join(failures)


def test_doctest_runner_bites(tmp_path):
    """A doctest that passes only with NORMALIZE_WHITESPACE is reported."""
    path = tmp_path / "spaced_module.py"
    path.write_text(
        textwrap.dedent(
            '''\
            """Example
            -------
            >>> print("a  b")
            a b
            >>> print("long output")
            long ...
            """
            '''
        )
    )
    spec = importlib.util.spec_from_file_location("spaced_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    failures = doctest_failures([module], tmp_path=tmp_path)
    assert len(failures) == 1 and "1 failing" in failures[0]
    flags = SB_DOCTEST_FLAGS | doctest.NORMALIZE_WHITESPACE
    assert doctest_failures([module], flags, tmp_path) == []


# --------------------------------------------------------------------------
# 6. ruff with SpeechBrain's configuration (pyproject.toml)
# --------------------------------------------------------------------------


def _sb_ruff_config(tmp_path):
    config = tmp_path / "speechbrain_ruff.toml"
    config.write_text(SB_RUFF_CONFIG)
    return config


def ruff_with_config(args, config, cwd=ROOT):
    """Runs ``ruff <args> --config <config>`` in ``cwd``; returns its output.

    Arguments
    ---------
    args : list
        The sub-command and its options.
    config : pathlib.Path
        A ruff.toml.
    cwd : pathlib.Path
        Where to run.

    Returns
    -------
    tuple
        ``(return code, output)``.
    """
    out = processes.run(
        [_tool("ruff"), *args, "--no-cache", "--config", str(config), "."],
        120,
        cwd=cwd,
    )
    return out.returncode, out.stdout + (out.stderr or "")


def test_ruff_check_with_speechbrain_configuration(tmp_path):
    """``ruff check`` with SpeechBrain's rules finds nothing."""
    code, output = ruff_with_config(["check"], _sb_ruff_config(tmp_path))
    assert code == 0, output


def would_reformat(output):
    """The files ``ruff format --check`` names (old and new output)."""
    old = re.findall(r"Would reformat: (\S+)", output)
    new = re.findall(r"--> (\S+?):\d+:\d+", output)
    return sorted(set(old + new))


def test_ruff_format_with_speechbrain_configuration(tmp_path):
    """``ruff format --check`` with SpeechBrain's format settings."""
    code, output = ruff_with_config(
        ["format", "--check"], _sb_ruff_config(tmp_path)
    )
    files = would_reformat(output)
    assert code == 0, f"{len(files)} files would be reformatted: {files}"


def test_ruff_checks_bite(tmp_path):
    """A lint error and a docstring example formatted otherwise are found
    by the two ruff runs."""
    config = _sb_ruff_config(tmp_path)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "bad.py").write_text(
        '"""M.\n\nExample\n-------\n>>> x = {  "a":1}\n"""\n\nimport os\n'
    )
    code, output = ruff_with_config(["check"], config, cwd=repo)
    assert code != 0 and "F401" in output, output
    code, output = ruff_with_config(["format", "--check"], config, cwd=repo)
    assert code != 0 and would_reformat(output) == ["bad.py"], output


# --------------------------------------------------------------------------
# 7. extra_requirements.txt per recipe folder
# --------------------------------------------------------------------------


def extra_requirement_errors(recipe_folder):
    """Problems of a recipe folder's ``extra_requirements.txt``.

    It must exist, and each line (comments and blank lines aside) must be
    a requirement that parses and whose distribution is installed here.

    Arguments
    ---------
    recipe_folder : pathlib.Path
        A ``recipes/<Dataset>`` folder.

    Returns
    -------
    list
        Error messages.
    """
    from importlib import metadata

    path = recipe_folder / "extra_requirements.txt"
    if not path.is_file():
        return [f"{recipe_folder.name}: no extra_requirements.txt"]
    errors = []
    for line in path.read_text("utf-8").splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            errors.append(f"{path.name}: {line!r} does not parse ({error})")
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            errors.append(f"{recipe_folder.name}: {line} not installed")
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            errors.append(f"{recipe_folder.name}: {line}, installed {version}")
    return errors


RECIPE_FOLDERS = sorted(
    p.parent.parent for p in RECIPES.glob("*/hparams/*.yaml")
)


@pytest.mark.parametrize(
    "folder", sorted(set(RECIPE_FOLDERS)), ids=lambda p: p.name
)
def test_recipe_folder_has_extra_requirements(folder):
    """Each recipe folder lists what it needs beyond SpeechBrain."""
    assert extra_requirement_errors(folder) == []


def test_extra_requirements_check_bites(tmp_path):
    """A missing file, a line that does not parse and an absent package
    are reported."""
    assert extra_requirement_errors(tmp_path) == [
        f"{tmp_path.name}: no extra_requirements.txt"
    ]
    (tmp_path / "extra_requirements.txt").write_text(
        "# comment\nspeechbrain>=1.0\nnot a requirement!\n"
        "surely-not-installed-pkg-xyz\nspeechbrain<0.1\n"
    )
    errors = extra_requirement_errors(tmp_path)
    assert len(errors) == 3, errors
    assert "does not parse" in errors[0]
    assert "not installed" in errors[1]
    assert "installed" in errors[2]


# --------------------------------------------------------------------------
# 8. No syntax newer than SpeechBrain's minimum Python
# --------------------------------------------------------------------------


def newer_syntax_errors(paths, minimum=MIN_PYTHON, root=ROOT):
    """Modules that do not parse with the grammar of ``minimum``.

    ``ast.parse(..., feature_version=minimum)`` rejects ``match``,
    parenthesised context managers, ``except*``, PEP 695 generics, ...
    (best effort, as documented).

    Arguments
    ---------
    paths : list
        Python files.
    minimum : tuple
        ``(3, minor)``.
    root : pathlib.Path
        For relative names in the messages.

    Returns
    -------
    list
        ``"<file>:<line>: <message>"``.
    """
    errors = []
    for path in paths:
        try:
            ast.parse(path.read_text("utf-8"), feature_version=minimum)
        except SyntaxError as error:
            name = path.relative_to(root) if root in path.parents else path
            errors.append(f"{name}:{error.lineno}: {error.msg}")
    return errors


def test_upstream_modules_parse_with_the_minimum_python():
    """unipool_lobes/ parses as Python 3.8 (SpeechBrain's >=3.8.1)."""
    errors = newer_syntax_errors(library_files(folders=UPSTREAM_FOLDERS))
    assert not errors, "\n".join(errors)


def test_ruff_finds_no_syntax_newer_than_the_minimum_python():
    """ruff's version-aware parser agrees, at ``--target-version py38``."""
    out = processes.run(
        [
            _tool("ruff"),
            "check",
            "--isolated",
            "--no-cache",
            "--select",
            "E9",
            "--target-version",
            "py38",
            *UPSTREAM_FOLDERS,
        ],
        120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout


def test_syntax_checks_bite(tmp_path):
    """``match`` and parenthesised context managers are reported."""
    path = tmp_path / "new.py"
    path.write_text(
        "match x:\n    case 1:\n        pass\n"
        "with (open('a') as f, open('b') as g):\n    pass\n"
    )
    assert len(newer_syntax_errors([path], root=tmp_path)) == 1
    assert newer_syntax_errors([path], minimum=(3, 10), root=tmp_path) == []
    out = processes.run(
        [
            _tool("ruff"),
            "check",
            "--isolated",
            "--no-cache",
            "--select",
            "E9",
            "--target-version",
            "py38",
            str(path),
        ],
        60,
        cwd=tmp_path,
    )
    assert out.returncode != 0
    assert "Python 3.8" in out.stdout and "with" in out.stdout, out.stdout
