"""The linters run in the suite: ruff (line length 80) and yamllint."""

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _tool(name):
    """Returns the path of a console script installed beside this Python."""
    local = pathlib.Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def test_ruff_check():
    """ruff finds nothing to report in the repository."""
    out = subprocess.run(
        [_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format():
    """Every Python file is formatted as ``ruff format`` would write it."""
    out = subprocess.run(
        [_tool("ruff"), "format", "--check", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_yamllint():
    """Every yaml file of the repository is yamllint-clean."""
    files = [
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("*.yaml")
        if ".venv" not in p.parts and "results" not in p.parts
    ]
    out = subprocess.run(
        [_tool("yamllint"), "--strict", "-c", ".yamllint.yaml", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
