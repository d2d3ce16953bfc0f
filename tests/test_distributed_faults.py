"""Faults across gloo processes: a stalled, a failing or a refusing process in evaluate_sharded.

Each fault must end in an error on every process, naming the process that stalled or
failed, within seconds; after a stall or a failure every process must be able to end at
once (``destroy_process_group`` and the process's exit must not wait for the group's own
timeout, 60 s here); a refusal on one process (bad input or a bad scorer) must be raised
on every process together and leave the group usable.
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from gloo import process_group, run_processes

import ccr_metrics as cm

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"
)

N_IMAGES, DIM = 12, 5
GROUP_TIMEOUT_S = 60  # what a survivor used to wait for after a fault
ENDS_WITHIN_S = 20  # generous: the machine may be loaded
# The stalls' limit: each test waits it out. The processes meet in a collective right
# after checking their shards, well inside it even on a loaded machine.
STALL_S = 0.5


def whole_problem() -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    images = rng.integers(-2, 3, (N_IMAGES, DIM)).astype(np.float32)
    owner = np.repeat(np.arange(N_IMAGES), 2)  # two captions per image
    texts = (images[owner] + rng.integers(-1, 2, (2 * N_IMAGES, DIM))).astype(np.float32)
    return images, {"en": texts}, {"en": owner}


def shard(rank: int, world: int) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    images, texts, owners = whole_problem()
    lo, hi = rank * N_IMAGES // world, (rank + 1) * N_IMAGES // world
    keep = (owners["en"] >= lo) & (owners["en"] < hi)
    return images[lo:hi], {"en": texts["en"][keep]}, {"en": owners["en"][keep] - lo}


def join(rank: int, port: int, world: int) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=GROUP_TIMEOUT_S),
    )


def wait_for(*paths: Path) -> None:
    """Stall until every path exists (at most the group's timeout)."""
    deadline = time.monotonic() + GROUP_TIMEOUT_S
    while not all(p.exists() for p in paths) and time.monotonic() < deadline:
        time.sleep(0.05)


def attempt(call) -> tuple[str, str, float]:
    """(error type or "returned", message, seconds) of ``call()``."""
    start = time.monotonic()
    try:
        call()
        kind, message = "returned", ""
    except Exception as exc:  # the test asserts the type
        kind, message = type(exc).__name__, str(exc)
    return kind, message, time.monotonic() - start


def stalled_worker(rank: int, port: int, out_dir: str) -> None:
    """Process 1 is called only after process 0 gave up; each then tears its group down."""
    out = Path(out_dir)
    join(rank, port, 2)
    images, texts, owners = shard(rank, 2)
    if rank == 1:
        wait_for(out / "rank0.json")
    kind, message, seconds = attempt(
        lambda: cm.evaluate_sharded(images, texts, owners, device="cpu", timeout=STALL_S)
    )
    start = time.monotonic()
    dist.destroy_process_group()
    torn_down = time.monotonic() - start
    (out / f"rank{rank}.json").write_text(json.dumps([kind, message, seconds, torn_down]))


def test_a_stalled_process_is_named_and_the_group_comes_down_at_once(tmp_path, gloo_pool):
    gloo_pool.run(stalled_worker, str(tmp_path), nprocs=2)
    (kind0, message0, seconds0, down0), (kind1, message1, seconds1, down1) = (
        json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)
    )
    assert kind0 == "TimeoutError"
    assert "process 0 stopped waiting for the other processes" in message0
    # What was under way, its limit, and the staller.
    assert (
        f"while evaluating sharded embeddings (limit {STALL_S:g} s): process 1 never reached "
        "a collective" in message0
    )
    assert seconds0 < 5  # the limit, long before the group's own timeout
    # The late process finds its peer gone at once, not after the limit or the group's.
    assert kind1 in ("RuntimeError", "TimeoutError") and "process 1" in message1
    assert seconds1 < ENDS_WITHIN_S
    # Nothing is left in flight: tearing the group down does not wait on it.
    assert down0 < 5 and down1 < 5


def failing_worker(rank: int, port: int, out_dir: str) -> None:
    """Process 1's scorer crashes; process 0, with no timeout, must learn it at once."""
    out = Path(out_dir)
    join(rank, port, 2)
    images, texts, owners = shard(rank, 2)

    def score_pairs(language, image_index, text_index):
        if rank == 1:
            raise RuntimeError("the scorer ran out of memory")
        return torch.zeros(len(image_index))

    kind, message, seconds = attempt(
        lambda: cm.evaluate_sharded(
            images, texts, owners, device="cpu", rerank=score_pairs, rerank_k=3
        )
    )
    (out / f"rank{rank}.json").write_text(json.dumps([kind, message, seconds]))
    # The failed process stays alive until its peer has answered: only the note it
    # left in the group's store can have told the peer.
    wait_for(out / "rank0.json")
    dist.destroy_process_group()


def test_a_failing_process_is_named_at_once_without_a_timeout(tmp_path, gloo_pool):
    gloo_pool.run(failing_worker, str(tmp_path), nprocs=2)
    kind0, message0, seconds0 = json.loads((tmp_path / "rank0.json").read_text())
    kind1, message1, _ = json.loads((tmp_path / "rank1.json").read_text())
    assert (kind1, message1) == ("RuntimeError", "the scorer ran out of memory")
    assert kind0 == "RuntimeError"
    assert "process 0 lost the other processes" in message0
    assert "process 1 failed: RuntimeError: the scorer ran out of memory" in message0
    assert seconds0 < ENDS_WITHIN_S  # not the group's 60 s


def refusing_worker(rank: int, port: int, out_dir: str) -> None:
    """Refusals on process 1 only; then a plain call in the same group."""
    out = Path(out_dir)
    images, texts, owners = shard(rank, 2)
    calls = {
        # float16 products past 65504 on process 1's shard only.
        "overflow": lambda: cm.evaluate_sharded(
            *(
                (images * (200 if rank else 1)).astype(np.float16),
                {"en": (texts["en"] * (200 if rank else 1)).astype(np.float16)},
                owners,
            ),
            device="cpu",
        ),
        "scorer": lambda: cm.evaluate_sharded(
            images,
            texts,
            owners,
            device="cpu",
            rerank=lambda lang, i, t: torch.zeros(len(i) + rank),  # one too many on 1
            rerank_k=3,
        ),
        "timeout": lambda: cm.evaluate_sharded(
            images, texts, owners, device="cpu", timeout=[30, float("nan")][rank]
        ),
        "plain": lambda: cm.evaluate_sharded(images, texts, owners, device="cpu").ranks,
    }
    with process_group(rank, port, 2, timeout_s=GROUP_TIMEOUT_S):
        outcomes = {name: attempt(call)[:2] for name, call in calls.items()}
        report = cm.evaluate_sharded(images, texts, owners, device="cpu")
        ranks = {d: report.ranks["en"][d].tolist() for d in ("i2t", "t2i")}
    (out / f"rank{rank}.json").write_text(json.dumps([outcomes, ranks]))


def test_a_refusal_on_one_process_is_raised_on_all_and_the_group_stays_usable(tmp_path, gloo_pool):
    gloo_pool.run(refusing_worker, str(tmp_path), nprocs=2)
    expected = cm.evaluate(*whole_problem(), device="cpu")
    for rank in range(2):
        outcomes, ranks = json.loads((tmp_path / f"rank{rank}.json").read_text())
        for name, words in {
            "overflow": [
                "counting the ranks failed on 1 of 2",
                "process 1: a dot product",
                "overflow",
            ],
            "scorer": ["re-scoring language 'en' failed on 1 of 2", "process 1: rerank"],
            "timeout": ["failed on 1 of 2", "process 1: timeout must be", "got nan"],
        }.items():
            kind, message = outcomes[name]
            assert kind == "InputError", (rank, name, message)
            assert all(w in message for w in words), (rank, name, message)
        assert outcomes["plain"][0] == "returned"
        for d in ("i2t", "t2i"):
            np.testing.assert_array_equal(ranks[d], expected.ranks["en"][d])


def exiting_worker(rank: int, port: int, out_dir: str) -> None:
    """Process 2 stalls; processes 0 and 1 give up, tear the group down and end."""
    out = Path(out_dir)
    join(rank, port, 3)
    images, texts, owners = shard(rank, 3)
    if rank == 2:
        wait_for(out / "rank0.json", out / "rank1.json")
    kind, message, _ = attempt(
        lambda: cm.evaluate_sharded(images, texts, owners, device="cpu", timeout=STALL_S)
    )
    (out / f"rank{rank}.json").write_text(json.dumps([kind, message, time.time()]))
    dist.destroy_process_group()  # as the docs advise; the process then ends


def test_after_a_stall_every_process_ends_within_seconds(tmp_path):
    run_processes(exiting_worker, str(tmp_path), nprocs=3)
    ended = time.time()
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(3)]
    for kind, message, _ in got[:2]:
        assert kind == "TimeoutError"
        assert "process 2 never reached a collective" in message
    assert got[2][0] in ("RuntimeError", "TimeoutError")
    # All three processes have exited, well before the group's own timeout.
    assert ended - max(t for _, _, t in got[:2]) < ENDS_WITHIN_S
