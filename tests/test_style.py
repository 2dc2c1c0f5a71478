"""The linters run in the suite: ruff (line length 80) and yamllint."""

import pathlib
import shutil
import sys

import processes

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _tool(name):
    """Returns the path of a console script installed beside this Python."""
    local = pathlib.Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def test_ruff_check():
    """ruff finds nothing to report in the repository."""
    out = processes.run([_tool("ruff"), "check", "."], 120, cwd=ROOT)
    assert out.returncode == 0, out.stdout


def test_ruff_format():
    """Every Python file is formatted as ``ruff format`` would write it."""
    out = processes.run(
        [_tool("ruff"), "format", "--check", "."], 120, cwd=ROOT
    )
    assert out.returncode == 0, out.stdout


def test_yamllint():
    """Every yaml file of the repository is yamllint-clean."""
    files = [
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*.yaml")
        if ".venv" not in p.parts and "results" not in p.parts
    ]
    out = processes.run(
        [_tool("yamllint"), "--strict", "-c", ".yamllint.yaml", *files],
        120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout


def test_tests_start_processes_only_with_a_timeout():
    """Every process a test starts goes through tests/processes.py, which
    kills it (and its children) at a timeout and fails with its output."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name == "processes.py" or "fault_injection" in path.parts:
            continue
        text = path.read_text()
        # Spelled in parts so that this test does not find itself.
        needles = ["sub" + "process.", "os." + "system(", "os." + "popen("]
        for needle in needles:
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not offenders, offenders
