"""Starting processes from tests: always with a timeout, never a hang.

Every test that starts a process goes through :func:`run` or
:class:`Started` (``tests/test_style.py`` checks that no test calls
``subprocess`` directly). A process that outlives its timeout is killed
together with everything it started (torchrun's workers run in sessions
of their own, so the whole process tree is found through ``/proc`` and
killed), and the test fails with the last lines of its output.
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

FAULT_INJECTION = pathlib.Path(__file__).resolve().parent / "fault_injection"
OUTPUT_TAIL = 6000


def descendants(pid):
    """The pids of every living descendant of ``pid`` (Linux ``/proc``)."""
    children = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(process):
    """SIGKILLs a process and all its descendants, then reaps it."""
    for _ in range(2):  # a second pass catches children forked meanwhile
        for pid in [*descendants(process.pid), process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    process.wait()


def environment(extra=None, slow_rank=None, slow_seconds=0.3, slow_under=None):
    """The environment of a test process, with optional fault injection.

    Arguments
    ---------
    extra : dict, optional
        Variables to add.
    slow_rank : int, optional
        Make the process of this rank (``RANK``; 0 without torchrun) wait
        ``slow_seconds`` before every file write and rename it makes
        (``tests/fault_injection/sitecustomize.py``).
    slow_seconds : float
        The delay.
    slow_under : str, optional
        Delay only the writes of paths under this folder.

    Returns
    -------
    dict
        The environment.
    """
    env = dict(os.environ)
    env.update(extra or {})
    if slow_rank is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(FAULT_INJECTION), env.get("PYTHONPATH")])
        )
    if slow_rank is not None:
        env["UNIPOOL_TEST_SLOW_RANK"] = str(slow_rank)
        env["UNIPOOL_TEST_SLOW_SECONDS"] = str(slow_seconds)
    if slow_under is not None:
        env["UNIPOOL_TEST_SLOW_UNDER"] = str(slow_under)
    return env


class Started:
    """A started process: killed with its whole tree if still running.

    Use as a context manager so the process never outlives the test.

    Arguments
    ---------
    command : list of str
        The command.
    timeout : float
        Seconds :meth:`finish` waits before killing it.
    **popen
        Passed to ``subprocess.Popen`` (``cwd``, ``env``...), plus ``log``
        (a file receiving stdout and stderr, for a process polled while it
        runs) and ``merge`` (default True: stderr merged into stdout).
    """

    def __init__(self, command, timeout, **popen):
        self.command = [str(part) for part in command]
        self.timeout = timeout
        self.started = time.monotonic()
        self.log = popen.pop("log", None)
        merge = popen.pop("merge", True)
        if self.log is None:
            self._log_file = None
            popen.setdefault("stdout", subprocess.PIPE)
            popen.setdefault(
                "stderr", subprocess.STDOUT if merge else subprocess.PIPE
            )
        else:
            self._log_file = open(self.log, "w")  # noqa: SIM115
            popen["stdout"] = self._log_file
            popen["stderr"] = subprocess.STDOUT
        popen.setdefault("text", True)
        self.process = subprocess.Popen(self.command, **popen)  # noqa: S603

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.process.poll() is None:
            kill_tree(self.process)
        if self._log_file is not None:
            self._log_file.close()

    @property
    def pid(self):
        """The pid of the started process."""
        return self.process.pid

    def remaining(self):
        """Seconds left before the timeout."""
        return self.timeout - (time.monotonic() - self.started)

    def output(self):
        """What the process wrote so far (with ``log``) or in all."""
        if self.log is not None:
            self._log_file.flush()
            return pathlib.Path(self.log).read_text(errors="replace")
        return ""

    def finish(self, check=False):
        """Waits for the end, killing the tree at the timeout.

        Arguments
        ---------
        check : bool
            Fail the test unless the exit code is 0.

        Returns
        -------
        subprocess.CompletedProcess
            ``returncode`` and ``stdout`` (stdout and stderr together).
        """
        try:
            out, err = self.process.communicate(
                timeout=max(0, self.remaining())
            )
        except subprocess.TimeoutExpired:
            kill_tree(self.process)
            out, err = self.process.communicate()
            text = (out or "") + (err or "") + self.output()
            pytest.fail(
                f"timed out after {self.timeout} s, killed: "
                f"{' '.join(self.command)}\n--- output ---\n"
                f"{text[-OUTPUT_TAIL:]}",
                pytrace=False,
            )
        text = (out or "") + self.output()
        done = subprocess.CompletedProcess(
            self.command, self.process.returncode, text, err or ""
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"exit code {done.returncode}: {' '.join(self.command)}\n"
                f"--- output ---\n{(text + (err or ''))[-OUTPUT_TAIL:]}",
                pytrace=False,
            )
        return done


def run(command, timeout, check=False, **popen):
    """Runs a command to its end within ``timeout`` seconds.

    Arguments
    ---------
    command : list of str
        The command.
    timeout : float
        Seconds before it (and its whole tree) is killed and the test fails
        with its output.
    check : bool
        Fail the test unless the exit code is 0.
    **popen
        Passed to :class:`Started` (``cwd``, ``env``, ``merge``...).

    Returns
    -------
    subprocess.CompletedProcess
        With ``returncode`` and ``stdout`` (stderr merged into it unless
        ``merge=False``).
    """
    with Started(command, timeout, **popen) as started:
        return started.finish(check=check)


HOLD_LOCK = """
import sys, time
from unipool_lobes.utils import safe_io
lock = getattr(safe_io, sys.argv[1])(sys.argv[2], sys.argv[3])
print("locked", flush=True)
time.sleep(120)
"""


def holding_lock(path, purpose, log_folder, target=True):
    """A process holding the lock of an output, as a running job would.

    Arguments
    ---------
    path : str or os.PathLike
        The output (a target replaced whole, or a folder).
    purpose : str
        What the holder says it does.
    log_folder : pathlib.Path
        Where its output goes.
    target : bool
        ``lock_target`` (True) or ``lock_folder`` (False).

    Returns
    -------
    Started
        The holder, once it holds the lock (use it as a context manager;
        it is killed at the end).
    """
    kind = "lock_target" if target else "lock_folder"
    holder = Started(
        python("-c", HOLD_LOCK, kind, path, purpose),
        120,
        log=log_folder / f"holder_{pathlib.Path(path).name}.log",
    )
    while "locked" not in holder.output():
        if holder.process.poll() is not None or holder.remaining() < 0:
            holder.__exit__(None, None, None)
            pytest.fail(f"the lock holder failed:\n{holder.output()}")
        time.sleep(0.02)
    return holder


def python(*args):
    """``[sys.executable, *args]``."""
    return [sys.executable, *map(str, args)]


def torchrun(nproc=2):
    """The torchrun command for ``nproc`` local processes on a free port."""
    return python(
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
    )


# Short collective timeout, and torch comparing every collective across the
# processes: a mismatch fails at once with an error naming both.
DDP_ENV = {}
DDP_TIMEOUT_OPTION = "--ddp_timeout=60"
