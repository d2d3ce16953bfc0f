"""Peak memory of ``ccr-metrics scores`` on a large score matrix, per file format.

Writes one float32 image-to-text matrix of about ``--gb`` GB in each format (``npy``:
a folder of ``<key>.npy`` files), runs
``ccr-metrics scores FILE`` on it in a fresh process, and reports the process's peak
resident memory against the file size (and against a process that only imports the
library). Two figures per run: the peak resident set (which counts the pages of a
memory-mapped file once they are read) and the peak *anonymous* memory, sampled from
``/proc`` every 5 ms (what the process allocated itself: a memory-mapped file's pages
are not in it, and the kernel can drop them under pressure). Memory-mapped formats
should stay near the import baseline in anonymous memory; a compressed ``.npz`` has to
be decompressed into it. Linux only (``/proc``).

    python benchmarks/bench_memory.py                 # 2 GB, all formats
    python benchmarks/bench_memory.py --gb 0.2 --formats npz safetensors
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

FORMATS = ("npz", "npz-compressed", "npy", "safetensors", "pt")


def write(path: Path, kind: str, scores: np.ndarray) -> Path:
    arrays = {"i2t.en": scores}
    if kind == "npz":
        np.savez(path.with_suffix(".npz"), **arrays)
        return path.with_suffix(".npz")
    if kind == "npz-compressed":
        np.savez_compressed(path.with_suffix(".npz"), **arrays)
        return path.with_suffix(".npz")
    if kind == "npy":  # a folder of <key>.npy files
        path.mkdir()
        for key, value in arrays.items():
            np.save(path / f"{key}.npy", value)
        return path
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    if kind == "safetensors":
        save_file(tensors, path.with_suffix(".safetensors"))
        return path.with_suffix(".safetensors")
    torch.save(tensors, path.with_suffix(".pt"))
    return path.with_suffix(".pt")


def status_mb(pid: int) -> dict[str, float]:
    """The ``kB`` fields of ``/proc/PID/status``, in MB (empty once the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    fields = (line.split() for line in lines if line.endswith(" kB"))
    return {f[0].rstrip(":"): int(f[1]) / 1024 for f in fields}


def peaks_mb(command: list[str]) -> tuple[float, float]:
    """Peak resident set and peak anonymous memory of ``command``, in MB."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    hwm = anon = 0.0
    while child.poll() is None:
        now = status_mb(child.pid)
        # VmHWM is the kernel's own peak; RssAnon has no peak field, so it is sampled.
        hwm, anon = max(hwm, now.get("VmHWM", 0.0)), max(anon, now.get("RssAnon", 0.0))
        time.sleep(0.005)
    if child.returncode != 0:
        err = child.stderr.read().decode()[-500:] if child.stderr else ""
        raise SystemExit(f"{' '.join(command)} failed:\n{err}")
    return hwm, anon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.0, help="size of the matrix (default 2)")
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    args = parser.parse_args()
    n = int(math.sqrt(args.gb * 1e9 / 4))
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((n, n), dtype=np.float32)  # one caption per image
    print(f"i2t.en [{n:,} x {n:,}] float32, {scores.nbytes / 1e9:.2f} GB", end="; ")
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    # Sleeps so that the sampler sees the import's anonymous memory.
    base_rss, base_anon = peaks_mb(
        [sys.executable, "-c", "import ccr_metrics, torch, time; time.sleep(0.5)"]
    )
    print(f"importing ccr_metrics: {base_rss:.0f} MB resident, {base_anon:.0f} MB anonymous")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.formats:
            file = write(Path(tmp) / f"scores-{kind}", kind, scores)
            size = sum(f.stat().st_size for f in [file, *file.glob("*")] if f.is_file()) / 1e6
            command = [sys.executable, "-m", "ccr_metrics", "scores", str(file), "--device", "cpu"]
            rss, anon = peaks_mb(command)
            print(
                f"{kind:15s} file {size:6.0f} MB   peak resident {rss:6.0f} MB "
                f"(+{(rss - base_rss) / size:4.2f} x file)   peak anon {anon:6.0f} MB "
                f"(+{(anon - base_anon) / size:4.2f} x file)"
            )
            shutil.rmtree(file) if file.is_dir() else file.unlink()


if __name__ == "__main__":
    main()
