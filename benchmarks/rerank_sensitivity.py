"""How much the ranking protocol of a re-ranking model moves its MRV, for one model.

Run ``python benchmarks/rerank_sensitivity.py --help`` for the options;
docs/reranking.md holds measured figures.

Synthetic xFlickr&CO-sized data: ``--images`` unit image embeddings (default 2,000,
``D = --dim`` 256) and one caption per image in each language, the image plus Gaussian
noise of norm about ``--noise`` (one level per language; a larger noise is a weaker
language), normalised again. The defaults put about 0.5% and 1.5% of the text-to-image
targets outside the top ``k`` in the first two languages, 4.5% and 8% in the others.

A two-stage model retrieves each caption's image: the first stage is the embedding dot
product, float32 (``coarse``); each query's top ``--k`` images (default 128,
``top_candidates``) are re-scored by a stand-in cross-encoder, the first-stage
similarity plus Gaussian noise of standard deviation ``--fine-noise`` (``fine``).

The same ``coarse``, candidates and ``fine`` are then ranked, text-to-image:

- ``filled``: the released protocol, ``released_rerank_scores`` (``fine`` at the
  candidates, -100 elsewhere) ranked by ``positive_ranks`` with ties optimistic,
  average (= expected, for ranks) and pessimistic; and, for comparison, ranked with each
  tie put in a uniformly random order, ``--draws`` times (MRV averaged over the draws);
- ``argsort``: the released code's own order, the 0-based position of the target in
  ``np.argsort(row)[::-1]`` plus 1, numpy's default sort as ``itm_eval`` calls it (and,
  to show that the order is the sort's, ``kind="stable"`` too);
- ``cascade``: ``reranked_rank_counts``, the candidates by ``fine``, then every other
  image by ``coarse``.

For each it prints R@1/5/10 (mean over languages, percent; recall from rank counts is
the expected recall) and MRV over the ``[N, K]`` rank matrix in both forms
(``mean_rank_variance``: ``variance`` is the paper's Eq. 7, ``std`` what the released
code printed), as a markdown table, then per language the fraction of targets outside
the top ``k`` and the cascade's R@1 and R@10. Everything is drawn from ``--seed``: one
seed, one table, on one machine (the scores are BLAS products, and the argsort order
depends on numpy's sort).

    python benchmarks/rerank_sensitivity.py              # a few seconds
    python benchmarks/rerank_sensitivity.py --seed 1 --k 256
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import ccr_metrics as cm

KS = (1, 5, 10)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw (default 0)")
    parser.add_argument("--images", type=int, default=2000, help="images, N (default 2000)")
    parser.add_argument("--dim", type=int, default=256, help="embedding dimension (default 256)")
    parser.add_argument(
        "--languages",
        default="en,de,ja,zh",
        help="comma-separated language names (default en,de,ja,zh)",
    )
    parser.add_argument(
        "--noise",
        default="4.0,4.4,5.0,5.5",
        help="norm of each language's caption noise, comma-separated (default 4.0,4.4,5.0,5.5)",
    )
    parser.add_argument("--k", type=int, default=128, help="candidates re-scored (default 128)")
    parser.add_argument(
        "--fine-noise",
        type=float,
        default=0.01,
        help="std of the cross-encoder's noise on the similarity (default 0.01)",
    )
    parser.add_argument(
        "--draws", type=int, default=20, help="random tie orders drawn (default 20)"
    )
    parser.add_argument(
        "--fill", type=float, default=-100.0, help="score of non-candidates (default -100)"
    )
    args = parser.parse_args()
    args.languages = args.languages.split(",")
    args.noise = [float(v) for v in args.noise.split(",")]
    if len(args.noise) != len(args.languages):
        parser.error(f"--noise has {len(args.noise)} levels for {len(args.languages)} languages")
    if len(args.languages) < 2:
        parser.error("MRV needs at least two languages")
    if not 1 <= args.k <= args.images:
        parser.error(f"--k must be in [1, {args.images}]")
    return args


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def argsort_ranks(scores: np.ndarray, targets: np.ndarray, kind: str | None) -> np.ndarray:
    """``itm_eval``'s ranks: position of the target in ``argsort(row)[::-1]``, plus 1."""
    ranks = np.empty(len(targets))
    for q, row in enumerate(scores):
        inds = np.argsort(row, kind=kind)[::-1]
        ranks[q] = np.where(inds == targets[q])[0][0] + 1
    return ranks


ROWS = {  # key: (protocol, ties), in the order printed
    "filled|optimistic": ("filled (-100), `positive_ranks`", "optimistic"),
    "filled|average": ("filled (-100), `positive_ranks`", "average = expected"),
    "filled|pessimistic": ("filled (-100), `positive_ranks`", "pessimistic"),
    "filled|random": ("filled (-100), random tie order", "mean of {draws} draws"),
    "argsort|default": ("filled (-100), released `argsort[::-1]`", "numpy default sort"),
    "argsort|stable": ("filled (-100), released `argsort[::-1]`", '`kind="stable"`'),
    "cascade|expected": ("cascade, `reranked_ranks`", "expected (default)"),
}


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    # Separate streams, so that --draws does not change the data.
    data_seed, tie_seed = np.random.SeedSequence(args.seed).spawn(2)
    rng, tie_rng = np.random.default_rng(data_seed), np.random.default_rng(tie_seed)
    n, dim, k = args.images, args.dim, args.k
    images = unit(rng.standard_normal((n, dim))).astype(np.float32)
    targets = np.arange(n)  # caption j of every language describes image j

    # row -> one entry per language: ranks [draws, N] (draws = 1 but for "random"), recall
    ranks: dict[str, list[np.ndarray]] = {name: [] for name in ROWS}
    recall: dict[str, list[dict[int, float]]] = {name: [] for name in ROWS}
    outside: list[float] = []

    def add(name: str, r: np.ndarray, rec: dict[int, float]) -> None:
        ranks[name].append(np.asarray(r, dtype=np.float64).reshape(-1, n))
        recall[name].append(rec)

    for noise in args.noise:
        jitter = noise * rng.standard_normal((n, dim)) / np.sqrt(dim)
        texts = unit(images + jitter).astype(np.float32)
        coarse = texts @ images.T  # [M, N] float32, text-to-image
        candidates = cm.top_candidates(coarse, k)  # [M, k]
        picked = np.take_along_axis(coarse, candidates, axis=1)
        fine = (picked + args.fine_noise * rng.standard_normal(picked.shape)).astype(np.float32)
        outside.append(float(np.mean(~(candidates == targets[:, None]).any(axis=1))))

        filled = cm.released_rerank_scores(coarse, candidates, fine, fill=args.fill)
        counts = cm.rank_counts(filled, targets)  # recall under "expected" needs the counts
        for ties in ("optimistic", "average", "pessimistic"):
            r = cm.positive_ranks(filled, targets, ties=ties)
            rec_ties = "expected" if ties == "average" else ties
            add(f"filled|{ties}", r, cm.recall_at_k(counts, KS, ties=rec_ties))
        # A uniformly random order of each tie: the target (the only positive) at a
        # uniform place among itself and its tied negatives, --draws times.
        draws = np.stack(
            [
                counts.above + 1 + tie_rng.integers(0, counts.tied_negatives + 1)
                for _ in range(args.draws)
            ]
        )
        add("filled|random", draws, {c: float((draws <= c).mean()) for c in KS})
        for kind in (None, "stable"):
            r = argsort_ranks(filled, targets, kind)
            add(f"argsort|{kind or 'default'}", r, cm.recall_at_k(r, KS))
        cascade = cm.reranked_rank_counts(coarse, candidates, fine, targets)
        add("cascade|expected", cascade.ranks("expected"), cm.recall_at_k(cascade, KS))

    print(
        f"t2i, {n} images x {len(args.languages)} languages ({', '.join(args.languages)}), "
        f"D = {dim}, k = {k}, seed {args.seed}; R@K in %, mean over languages\n"
    )
    print("| protocol | ties | R@1 | R@5 | R@10 | MRV (variance, Eq. 7) | MRV (std, released) |")
    print("|---|---|---|---|---|---|---|")
    for name, (protocol, ties) in ROWS.items():
        # [draws, N, K]: MRV of each draw's rank matrix, averaged over the draws
        matrices = np.stack(ranks[name], axis=2)
        variance = np.mean([cm.mean_rank_variance(m) for m in matrices])
        std = np.mean([cm.mean_rank_variance(m, reduction="std") for m in matrices])
        cells = " | ".join(f"{100 * np.mean([rec[c] for rec in recall[name]]):.2f}" for c in KS)
        ties = ties.format(draws=args.draws)
        print(f"| {protocol} | {ties} | {cells} | {variance:,.1f} | {std:.2f} |")

    print(f"\n| language | caption noise | targets outside the top {k} | R@1 | R@10 |")
    print("|---|---|---|---|---|")
    for j, (lang, noise) in enumerate(zip(args.languages, args.noise, strict=True)):
        rec = recall["cascade|expected"][j]
        print(
            f"| {lang} | {noise:g} | {outside[j]:.2%} | {100 * rec[1]:.2f} | {100 * rec[10]:.2f} |"
        )
    print(f"\n{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
