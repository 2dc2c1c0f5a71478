"""Benchmark: exact fast EER + minDCF against SpeechBrain's.

Random trials (positives N(1, 1), negatives N(0, 1), half each, float32)
at Vox1-O size (37,720) and Vox1-H size (552,536), plus small sizes where
SpeechBrain's O(N^2) functions still fit (a minute and 4 GB). SpeechBrain's
time and memory at the large sizes are extrapolated from a least-squares
fit ``a N^2 + b N`` over the small sizes, and marked so.

Every measurement runs in a fresh subprocess; times are the best of three
runs (ours) or two (SpeechBrain's), after a warm-up call. Peak memory is
the rise of the process's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs``) during the first call over its resident set
before it, so it counts torch and numpy allocations alike but not the
input scores.

Usage: python benchmarks/bench_scoring.py

Authors
 * unipool-sv developers 2026
"""

import json
import subprocess
import sys
import time

import numpy as np

VOX1_O = 37_720
VOX1_H = 552_536
SPEECHBRAIN_SIZES = (2_500, 5_000, 7_500, 10_000)
OUR_SIZES = (*SPEECHBRAIN_SIZES, VOX1_O, VOX1_H)
SEED = 0
TOLERANCE = 1e-6
# SpeechBrain's minDCF holds [2N x N/2] float32 copies and bool masks
# for both classes; run it only where this estimate stays under 4 GB.
MEMORY_LIMIT_BYTES = 4e9
SPEECHBRAIN_BYTES_PER_PAIR = 13


def _trials(n_trials, seed):
    """float32 positive and negative scores, half each."""
    import torch

    rng = np.random.default_rng(seed)
    n_positive = n_trials // 2
    positive = rng.normal(1.0, 1.0, n_positive)
    negative = rng.normal(0.0, 1.0, n_trials - n_positive)
    return (
        torch.tensor(positive, dtype=torch.float32),
        torch.tensor(negative, dtype=torch.float32),
    )


def _resident_kb(field):
    """Reads VmRSS or VmHWM of this process, in kB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _run_child(implementation, n_trials):
    """Times one EER + minDCF in this process and prints a JSON line."""
    import torch

    torch.set_num_threads(2)
    if implementation == "ours":
        from unipool_lobes.scoring.metrics import EER, minDCF
    else:
        from speechbrain.utils.metric_stats import EER, minDCF
    warm_positive, warm_negative = _trials(100, SEED + 1)
    EER(warm_positive, warm_negative)
    minDCF(warm_positive, warm_negative)
    positive, negative = _trials(n_trials, SEED)

    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current VmRSS
    before_kb = _resident_kb("VmRSS")
    start = time.perf_counter()
    eer = EER(positive, negative)
    min_dcf = minDCF(positive, negative)
    seconds = time.perf_counter() - start
    peak_kb = _resident_kb("VmHWM")

    repeats = 2 if implementation == "ours" else 1
    for _ in range(repeats):
        start = time.perf_counter()
        EER(positive, negative)
        minDCF(positive, negative)
        seconds = min(seconds, time.perf_counter() - start)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_bytes": (peak_kb - before_kb) * 1024,
                "eer": eer,
                "min_dcf": min_dcf,
            }
        )
    )


def _measure(implementation, n_trials):
    """Runs one measurement in a fresh interpreter."""
    output = subprocess.run(
        [sys.executable, __file__, "--child", implementation, str(n_trials)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _fit_quadratic(sizes, values):
    """Least-squares ``a N^2 + b N`` through the measured points."""
    sizes = np.asarray(sizes, dtype=np.float64)
    design = np.stack([sizes**2, sizes], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, np.asarray(values), rcond=None)
    return lambda n: float(coefficients[0] * n**2 + coefficients[1] * n)


def _same_values(ours, theirs):
    """Value and threshold of both metrics agree to TOLERANCE."""
    pairs = zip(
        (*ours["eer"], *ours["min_dcf"]),
        (*theirs["eer"], *theirs["min_dcf"]),
        strict=True,
    )
    return all(abs(a - b) <= TOLERANCE for a, b in pairs)


def _format_seconds(seconds):
    """Seconds, or hours for long extrapolations."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms"


def _format_bytes(n_bytes):
    """Bytes in MB, GB or TB."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes / 1e6:.1f} MB"


def main():
    """Measures both implementations and prints a markdown table."""
    started = time.perf_counter()
    ours = {n: _measure("ours", n) for n in OUR_SIZES}
    speechbrain = {}
    for n in SPEECHBRAIN_SIZES:
        estimate = SPEECHBRAIN_BYTES_PER_PAIR * 2 * n * n / 2
        if estimate <= MEMORY_LIMIT_BYTES:
            speechbrain[n] = _measure("speechbrain", n)
    measured = sorted(speechbrain)
    time_fit = _fit_quadratic(
        measured, [speechbrain[n]["seconds"] for n in measured]
    )
    memory_fit = _fit_quadratic(
        measured, [speechbrain[n]["peak_bytes"] for n in measured]
    )

    print(
        "| trials | ours time | SpeechBrain time | ratio "
        "| ours peak memory | SpeechBrain peak memory | same values |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in OUR_SIZES:
        mine = ours[n]
        if n in speechbrain:
            theirs_seconds = speechbrain[n]["seconds"]
            theirs_bytes = speechbrain[n]["peak_bytes"]
            mark = ""
            same = "yes" if _same_values(mine, speechbrain[n]) else "NO"
        else:
            theirs_seconds, theirs_bytes = time_fit(n), memory_fit(n)
            mark = " (extrapolated)"
            same = "n/a"
        print(
            f"| {n:,} | {_format_seconds(mine['seconds'])} "
            f"| {_format_seconds(theirs_seconds)}{mark} "
            f"| {theirs_seconds / mine['seconds']:,.0f}x "
            f"| {_format_bytes(mine['peak_bytes'])} "
            f"| {_format_bytes(theirs_bytes)}{mark} | {same} |"
        )
    largest = ours[VOX1_H]["seconds"]
    verdict = "met" if largest < 1.0 else "MISSED"
    print(
        f"\nTarget (< 1 s for EER + minDCF at {VOX1_H:,} trials): {verdict}. "
        f"Benchmark wall time {time.perf_counter() - started:.0f} s."
    )
    if any(not _same_values(ours[n], speechbrain[n]) for n in speechbrain):
        sys.exit("our EER/minDCF differ from SpeechBrain's")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _run_child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
