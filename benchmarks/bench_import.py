"""What ``import ccr_metrics`` costs on top of ``import torch``, in fresh processes.

Runs, alternating so that a slow spell of the machine hits every case alike, ``N``
fresh interpreters each of ``import torch``, ``import torch; import ccr_metrics`` and
``python -m ccr_metrics --help`` (what every CLI call pays before it works), and prints
per case the median wall-clock and CPU seconds (user + system, the steadier figure on
a shared machine) and the differences to ``import torch``. The second case also times
``import ccr_metrics`` inside the process, after torch: the cost itself, without the
difference of two noisy totals. Last, the heavy modules the package added to those
torch loaded. The target (issue 19): at most 0.3 s on top of torch.

By default the processes keep compiled bytecode in a temporary ``PYTHONPYCACHEPREFIX``
(written by an untimed first run), as an installed package has it (pip writes the
``.pyc`` files at install). ``--bytecode inherit`` passes this environment on as it is:
where it sets ``PYTHONDONTWRITEBYTECODE=1`` and the checkout has no ``.pyc``, every
process compiles the package's sources again.

    python benchmarks/bench_import.py             # 7 rounds, bytecode cached
    python benchmarks/bench_import.py --repeats 15 --bytecode inherit
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HEAVY = (
    "pandas",
    "scipy",
    "matplotlib",
    "tqdm",
    "numba",
    "safetensors",
    "torchmetrics",
    "hypothesis",
    "dateutil",
)
# The second case prints, as JSON, its own timing of `import ccr_metrics` and the
# heavy modules that import added to those torch loaded.
INSIDE = f"""
import json, sys, time
import torch
before = set(sys.modules)
wall, cpu = time.perf_counter(), time.process_time()
import ccr_metrics
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
added = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in {HEAVY!r})
print(json.dumps({{"wall": wall, "cpu": cpu, "added": added}}))
"""
TORCH = "import torch"
PACKAGE = "import torch; import ccr_metrics"
HELP = "python -m ccr_metrics --help"
CASES = {
    TORCH: [sys.executable, "-c", "import torch"],
    PACKAGE: [sys.executable, "-c", INSIDE],
    HELP: [sys.executable, "-m", "ccr_metrics", "--help"],
}


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """``(wall, cpu, stdout)`` of one fresh process running ``command`` to a clean exit."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime
    return wall, cpu, done.stdout


def environment(bytecode: str, cache: str) -> dict[str, str]:
    """The children's environment: bytecode written to and read from ``cache``, or as is."""
    env = dict(os.environ)
    if bytecode == "cache":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = cache
    return env


def measure(repeats: int, env: dict[str, str]) -> tuple[dict[str, list[float]], list[dict]]:
    """``{"CASE wall"/"CASE cpu": seconds per round}`` and the second case's own reports."""
    for command in CASES.values():  # untimed: fills the file cache and the bytecode
        run(command, env)
    times: dict[str, list[float]] = {f"{n} {k}": [] for n in CASES for k in ("wall", "cpu")}
    inside = []
    for _ in range(repeats):
        for name, command in CASES.items():
            wall, cpu, stdout = run(command, env)
            times[f"{name} wall"].append(wall)
            times[f"{name} cpu"].append(cpu)
            if name == PACKAGE:
                inside.append(json.loads(stdout))
    return times, inside


def report(times: dict[str, list[float]], inside: list[dict]) -> None:
    """Print the medians (with their ranges), the differences and the heavy modules."""
    for kind in ("wall", "cpu"):
        base = statistics.median(times[f"{TORCH} {kind}"])
        print(f"{kind} seconds, median [min-max]:")
        for name in CASES:
            values = times[f"{name} {kind}"]
            median = statistics.median(values)
            extra = "" if name == TORCH else f"  {median - base:+.2f} vs {TORCH}"
            print(f"  {name:34} {median:5.2f} [{min(values):.2f}-{max(values):.2f}]{extra}")
    wall = statistics.median(r["wall"] for r in inside)
    cpu = statistics.median(r["cpu"] for r in inside)
    print(f"import ccr_metrics after torch, timed inside: wall {wall:.3f} s, cpu {cpu:.3f} s")
    added: dict[str, int] = {}
    for module in inside[-1]["added"]:
        top = module.split(".")[0]
        added[top] = added.get(top, 0) + 1
    listed = ", ".join(f"{top} ({n} modules)" for top, n in sorted(added.items()))
    print("heavy modules import ccr_metrics added to torch's:", listed or "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds of all cases (7)")
    parser.add_argument(
        "--bytecode",
        choices=("cache", "inherit"),
        default="cache",
        help="cache: compiled once into a temporary folder (default); inherit: as this "
        "environment says",
    )
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    with tempfile.TemporaryDirectory(prefix="bench-import-") as cache:
        times, inside = measure(args.repeats, environment(args.bytecode, cache))
    print(f"{args.repeats} rounds of fresh processes, alternating; bytecode {args.bytecode}")
    report(times, inside)


if __name__ == "__main__":
    main()
