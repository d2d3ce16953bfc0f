"""Per-language galleries (``galleries=``) and the images MRV is over (``mrv_images=``).

Ranks are checked against a naive oracle written here: each language's texts ranked by
explicit loops over its own images, the full score matrix in hand. Embeddings are small
integers, so every product is exact and ties are common.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from early import early, gloo_run
from gloo import process_group

import ccr_metrics as cm
from ccr_metrics.cli import main

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
TIES = ("expected", "optimistic", "pessimistic")
N_IMAGES, DIM = 30, 6
# Each language its own images, few shared: en and de share 10-13, de and ja 20-23,
# en and ja 0-1; 10 and 11 are in all three. Image 23 is in de's gallery without a
# German caption (a distractor).
GALLERIES = {
    "en": np.arange(0, 14),
    "de": np.arange(10, 24),
    "ja": np.r_[0:2, 10:12, 20:30],
}


# ------------------------------------------------------------------ data and oracle


def wit_like(seed: int = 0):
    """Images, texts and owners (sorted by image) where each language has its own images."""
    rng = np.random.default_rng(seed)
    images = rng.integers(-2, 3, (N_IMAGES, DIM)).astype(np.float32)
    owners = {}
    for lang, g in GALLERIES.items():
        described = g[g != 23] if lang == "de" else g
        owners[lang] = np.sort(np.r_[described, described[::3]])  # some have two captions
    texts = {
        lang: (images[o] + rng.integers(-1, 2, (len(o), DIM))).astype(np.float32)
        for lang, o in owners.items()
    }
    return images, texts, owners


def shuffled(galleries, seed: int = 1):
    """The galleries in another order: the harness accepts any."""
    rng = np.random.default_rng(seed)
    return {lang: rng.permutation(g) for lang, g in galleries.items()}


def rank_of(row, positives, ties):
    """Rank of the best positive in ``row`` by the definition."""
    best = max(row[j] for j in positives)
    above = sum(v > best for v in row)
    tied_positives = sum(row[j] == best for j in set(positives))
    tied_negatives = sum(v == best for v in row) - tied_positives
    if ties == "optimistic":
        return float(above + 1)
    if ties == "pessimistic":
        return float(above + tied_negatives + 1)
    return float(above + Fraction(tied_negatives + tied_positives + 1, tied_positives + 1))


def oracle(images, texts, owners, galleries, ties):
    """{lang: {"i2t": [N] (NaN: no query), "t2i": [M_l]}}, each language in its gallery."""
    n = len(images)
    out = {}
    for lang, t in texts.items():
        gallery = list(range(n)) if galleries is None else sorted(galleries[lang].tolist())
        s = (images.astype(np.float64) @ t.astype(np.float64).T).tolist()  # [N, M_l]
        owner = owners[lang].tolist()
        i2t = np.full(n, np.nan)
        for i in gallery:
            captions = [j for j, o in enumerate(owner) if o == i]
            if captions:
                i2t[i] = rank_of(s[i], captions, ties)
        t2i = [
            rank_of([s[i][j] for i in gallery], [gallery.index(owner[j])], ties)
            for j in range(len(owner))
        ]
        out[lang] = {"i2t": i2t, "t2i": np.array(t2i)}
    return out


def assert_ranks(report, expected):
    for lang, by_dir in expected.items():
        for d, ranks in by_dir.items():
            np.testing.assert_array_equal(report.ranks[lang][d], ranks, err_msg=f"{lang} {d}")


def naive_mrv(expected, owners, languages, images_rule):
    """(MRV variance per direction, images) by explicit loops over the images."""
    out, used = {}, None
    for d in ("i2t", "t2i"):
        spreads, used = [], 0
        for i in range(N_IMAGES):
            ranks = []
            for lang in languages:
                if i not in owners[lang]:
                    continue
                if d == "i2t":
                    ranks.append(expected[lang]["i2t"][i])
                else:  # the image's first caption in file order
                    ranks.append(expected[lang]["t2i"][list(owners[lang]).index(i)])
            enough = len(ranks) == len(languages) if images_rule == "all" else len(ranks) >= 2
            if enough:
                spreads.append(np.var(ranks))
                used += 1
        out[d] = float(np.mean(spreads)) if spreads else None
    return out, used


# --------------------------------------------------------------- the three entry points


@pytest.mark.parametrize("ties", TIES)
def test_evaluate_ranks_each_language_in_its_gallery(ties):
    images, texts, owners = wit_like()
    report = cm.evaluate(
        images, texts, owners, galleries=shuffled(GALLERIES), ties=ties, device="cpu"
    )
    assert_ranks(report, oracle(images, texts, owners, GALLERIES, ties))
    assert report.settings["galleries"] == {"en": 14, "de": 14, "ja": 14}


@pytest.mark.parametrize("ties", TIES)
def test_evaluate_scores_ranks_each_language_in_its_gallery(ties):
    images, texts, owners = wit_like()
    i2t = {lang: images @ t.T for lang, t in texts.items()}
    t2i = {lang: t @ images.T for lang, t in texts.items() if lang != "ja"}
    report = cm.evaluate_scores(
        i2t, t2i, owners, galleries=shuffled(GALLERIES), ties=ties, device="cpu"
    )
    expected = oracle(images, texts, owners, GALLERIES, ties)
    del expected["ja"]["t2i"]
    assert_ranks(report, expected)


def test_evaluate_scores_reads_only_the_gallery_columns():
    """A non-finite score outside a language's gallery is never read; inside it is
    refused at its place in the stored matrix."""
    images, texts, owners = wit_like()
    t2i = {lang: t @ images.T for lang, t in texts.items()}
    t2i["en"][0, 20] = np.nan  # image 20 is not in en's gallery
    report = cm.evaluate_scores(t2i=t2i, text_to_image=owners, galleries=GALLERIES, device="cpu")
    assert_ranks(
        report,
        {
            lang: {"t2i": r["t2i"]}
            for lang, r in oracle(images, texts, owners, GALLERIES, "expected").items()
        },
    )
    t2i["en"][3, 12] = np.inf
    with pytest.raises(cm.InputError, match=r"t2i\['en'\] contains inf at index \[3, 12\]"):
        cm.evaluate_scores(t2i=t2i, text_to_image=owners, galleries=GALLERIES, device="cpu")


@pytest.mark.parametrize("chunk_size", [1, 3, 7])
def test_gallery_counts_do_not_depend_on_the_chunk_size(chunk_size):
    images, texts, owners = wit_like(seed=3)
    options = {"galleries": GALLERIES, "device": "cpu"}
    whole = cm.evaluate(images, texts, owners, **options)
    chunked = cm.evaluate(images, texts, owners, chunk_size=chunk_size, **options)
    for lang in texts:
        for d in ("i2t", "t2i"):
            a, b = whole.counts[lang][d], chunked.counts[lang][d]
            for field in ("above", "tied_negatives", "tied_positives"):
                np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_a_mixed_gallery_warns_and_gives_other_numbers():
    images, texts, owners = wit_like()
    with pytest.warns(UserWarning, match=r"cover different images .*galleries=") as caught:
        mixed = cm.evaluate(images, texts, owners, device="cpu")
    assert caught[0].filename == __file__  # points at the call
    assert "en 14, de 13, ja 14 of 30; 2 in every language" in str(caught[0].message)
    assert_ranks(mixed, oracle(images, texts, owners, None, "expected"))
    own = cm.evaluate(images, texts, owners, galleries=GALLERIES, device="cpu")
    assert mixed.recall()["en"]["t2i"] != own.recall()["en"]["t2i"]
    # i2t queries an image against its language's texts: the same in both.
    np.testing.assert_array_equal(mixed.ranks["en"]["i2t"], own.ranks["en"]["i2t"])
    with pytest.warns(UserWarning, match="galleries="):
        cm.evaluate_scores(
            t2i={lang: t @ images.T for lang, t in texts.items()}, text_to_image=owners
        )


def test_no_warning_where_the_languages_cover_the_same_images():
    images, texts, owners = wit_like()
    same = {lang: texts[lang][np.isin(owners[lang], [10, 11])] for lang in texts}
    same_owners = {lang: o[np.isin(o, [10, 11])] for lang, o in owners.items()}
    full = {lang: np.arange(N_IMAGES) for lang in texts}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cm.evaluate(images, same, same_owners, device="cpu")  # a subset, the same for all
        shared = cm.evaluate(images, texts, owners, galleries=full, device="cpu")
    with pytest.warns(UserWarning):
        implicit = cm.evaluate(images, texts, owners, device="cpu")
    # The same indices for every language are one shared gallery, said out loud.
    for lang in texts:
        for d in ("i2t", "t2i"):
            np.testing.assert_array_equal(shared.ranks[lang][d], implicit.ranks[lang][d])
    assert shared.to_dict() == implicit.to_dict()  # no per-language galleries recorded
    assert "galleries" not in shared.settings


# ------------------------------------------------------------------ MRV and its images


@pytest.mark.parametrize("rule", ["two", "all"])
def test_mrv_is_over_the_images_it_says(rule):
    images, texts, owners = wit_like()
    report = cm.evaluate(images, texts, owners, galleries=GALLERIES, mrv_images=rule, device="cpu")
    expected = oracle(images, texts, owners, GALLERIES, "expected")
    mrv, used = naive_mrv(expected, owners, list(texts), rule)
    # Two or more: 0-1 (en, ja), 10-13 (en, de), 20-22 (de, ja; 23 has no German text).
    assert used == (9 if rule == "two" else 2)
    assert report.mrv_image_counts() == {"i2t": used, "t2i": used}
    for d in ("i2t", "t2i"):
        assert report.mrv()[d]["variance"] == pytest.approx(mrv[d], rel=1e-12)
    summary = report.to_dict()
    assert summary["mrv_images"] == {"i2t": used, "t2i": used}
    assert summary["settings"]["mrv_images"] == rule
    assert report.to_flat_dict()["t2i/mrv_images"] == float(used)
    which = "two or more" if rule == "two" else "every one"
    assert f"over 3 languages, {used} images with texts in {which}" in report.to_table()
    # The breakdown is over the same images.
    assert cm.consistency_breakdown(report)["i2t/instances"] == used


def test_reports_over_other_galleries_or_mrv_images_are_not_compared():
    images, texts, owners = wit_like()
    own = cm.evaluate(images, texts, owners, galleries=GALLERIES, device="cpu")
    every = cm.evaluate(images, texts, owners, galleries=GALLERIES, mrv_images="all", device="cpu")
    with pytest.warns(UserWarning):
        mixed = cm.evaluate(images, texts, owners, device="cpu")
    with pytest.raises(cm.InputError, match="different settings: mrv_images 'two' != 'all'"):
        cm.compare(own, every, n_resamples=10, n_permutations=10)
    with pytest.raises(cm.InputError, match="different settings: galleries"):
        cm.compare(own, mixed, n_resamples=10, n_permutations=10)


def test_mrv_over_every_language_can_be_undefined():
    images, texts, owners = wit_like()
    texts, owners = dict(texts), dict(owners)
    keep = ~np.isin(owners["ja"], [10, 11])  # now no image is in all three
    texts["ja"], owners["ja"] = texts["ja"][keep], owners["ja"][keep]
    galleries = {**GALLERIES, "ja": np.setdiff1d(GALLERIES["ja"], [10, 11])}
    report = cm.evaluate(images, texts, owners, galleries=galleries, mrv_images="all", device="cpu")
    assert report.mrv() == {"i2t": None, "t2i": None}
    assert report.mrv_image_counts() == {"i2t": None, "t2i": None}
    assert "no image has texts in every language" in report.to_table()
    assert "t2i/mrv_images" not in report.to_flat_dict()


def test_saved_reports_keep_the_images_mrv_is_over(tmp_path):
    images, texts, owners = wit_like()
    report = cm.evaluate(images, texts, owners, galleries=GALLERIES, mrv_images="all", device="cpu")
    path = tmp_path / "r.json"
    report.save(path)
    document = json.loads(path.read_text())
    assert document["format"] == "ccr-metrics-report/3"
    assert document["mrv_images"] == {"i2t": 2, "t2i": 2}
    loaded = cm.Report.load(path)
    assert loaded.to_dict() == report.to_dict()
    # An edited count, or a /3 file without it, is refused naming the field.
    for edit, message in (
        (lambda d: d["mrv_images"].update(t2i=3), "mrv_images.t2i: the file says 3"),
        (lambda d: d.pop("mrv_images"), "mrv_images: missing"),
        (lambda d: d["settings"].update(mrv_images="some"), "settings.mrv_images must be"),
    ):
        changed = json.loads(json.dumps(document))
        edit(changed)
        path.write_text(json.dumps(changed))
        with pytest.raises(cm.InputError, match=message):
            cm.Report.load(path)
    # A format-2 file (before the count was saved) is read, the count derived.
    old = json.loads(json.dumps(document))
    old["format"] = "ccr-metrics-report/2"
    del old["mrv_images"]
    path.write_text(json.dumps(old))
    assert cm.Report.load(path).mrv_image_counts() == {"i2t": 2, "t2i": 2}


# --------------------------------------------------------------------- second stage


def fine_table(texts, seed: int = 5):
    """A second-stage score for every (image, text) pair of each language: small integers."""
    rng = np.random.default_rng(seed)
    return {
        lang: rng.integers(0, 4, (N_IMAGES, len(t))).astype(np.float64) for lang, t in texts.items()
    }


def alone(images, texts, owners, lang, **options):
    """Language ``lang`` evaluated as the test set of its gallery's images alone."""
    g = GALLERIES[lang]
    position = {int(i): p for p, i in enumerate(g)}
    return cm.evaluate(
        images[g],
        {lang: texts[lang]},
        {lang: np.array([position[int(o)] for o in owners[lang]])},
        device="cpu",
        **options,
    )


@pytest.mark.parametrize("protocol", ["cascade", "filled"])
def test_a_scorer_sees_each_language_its_own_images(protocol):
    images, texts, owners = wit_like()
    table = fine_table(texts)
    seen = {lang: set() for lang in texts}

    def scorer(lang, image, text):
        seen[lang].update(image.tolist())
        return table[lang][image.numpy(), text.numpy()]

    options = {"rerank_k": 4, "rerank_protocol": protocol}
    report = cm.evaluate(
        images, texts, owners, galleries=GALLERIES, rerank=scorer, device="cpu", **options
    )
    for lang, g in GALLERIES.items():
        assert seen[lang] <= set(g.tolist())
        sub = table[lang][g]
        one = alone(
            images,
            texts,
            owners,
            lang,
            rerank=lambda lang_, i, t, sub=sub: sub[i.numpy(), t.numpy()],
            **options,
        )
        np.testing.assert_array_equal(report.ranks[lang]["t2i"], one.ranks[lang]["t2i"])
        np.testing.assert_array_equal(report.ranks[lang]["i2t"][g], one.ranks[lang]["i2t"])


def test_stored_candidates_come_from_the_gallery():
    images, texts, owners = wit_like()
    table = fine_table(texts)
    rng = np.random.default_rng(2)
    candidates, fine, local_candidates, local_fine = (
        {"i2t": {}, "t2i": {}},
        {"i2t": {}, "t2i": {}},
        {"i2t": {}, "t2i": {}},
        {"i2t": {}, "t2i": {}},
    )
    for lang, g in GALLERIES.items():
        m = len(texts[lang])
        text_cand = np.stack([rng.permutation(m)[:3] for _ in range(N_IMAGES)])
        image_pos = np.stack([rng.permutation(len(g))[:3] for _ in range(m)])
        candidates["i2t"][lang] = text_cand
        fine["i2t"][lang] = np.take_along_axis(table[lang], text_cand, 1)
        candidates["t2i"][lang] = g[image_pos]
        fine["t2i"][lang] = table[lang][g[image_pos], np.arange(m)[:, None]]
        local_candidates["i2t"][lang], local_fine["i2t"][lang] = text_cand[g], fine["i2t"][lang][g]
        local_candidates["t2i"][lang], local_fine["t2i"][lang] = image_pos, fine["t2i"][lang]
    report = cm.evaluate(
        images, texts, owners, galleries=GALLERIES, candidates=candidates, fine=fine, device="cpu"
    )
    scores = cm.evaluate_scores(
        {lang: images @ t.T for lang, t in texts.items()},
        {lang: t @ images.T for lang, t in texts.items()},
        owners,
        galleries=GALLERIES,
        candidates=candidates,
        fine=fine,
        device="cpu",
    )
    for lang, g in GALLERIES.items():
        pick = {d: {lang: local_candidates[d][lang]} for d in ("i2t", "t2i")}
        picked = {d: {lang: local_fine[d][lang]} for d in ("i2t", "t2i")}
        one = alone(images, texts, owners, lang, candidates=pick, fine=picked)
        for got in (report, scores):
            np.testing.assert_array_equal(got.ranks[lang]["t2i"], one.ranks[lang]["t2i"])
            np.testing.assert_array_equal(got.ranks[lang]["i2t"][g], one.ranks[lang]["i2t"])
    candidates["t2i"]["en"][4, 1] = 25  # not an English image
    with pytest.raises(
        cm.InputError, match=r"candidates\['t2i'\]\['en'\] has image 25 at \[4, 1\]"
    ):
        cm.evaluate(images, texts, owners, galleries=GALLERIES, candidates=candidates, fine=fine)


# ------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda g: {**g, "en": np.r_[3, 4, 3, 5:14, 0:3]},
            r"galleries\['en'\] names image 3 twice, at positions 0 and 2",
        ),
        (
            lambda g: {**g, "de": np.r_[10:24, 30]},
            r"galleries\['de'\]\[14\] is image 30, out of range \[0, 30\)",
        ),
        (lambda g: {**g, "de": np.r_[-1, 10:24]}, r"galleries\['de'\]\[0\] is image -1"),
        (lambda g: {"en": g["en"], "de": g["de"]}, r"galleries has no entry for 'ja'"),
        (
            lambda g: {**g, "fr": g["en"]},
            r"galleries has an entry for 'fr', a language with no texts",
        ),
        (
            lambda g: {**g, "en": g["en"].astype(float)},
            r"galleries\['en'\] must hold integer image indices",
        ),
        (lambda g: {**g, "en": g["en"][None]}, r"galleries\['en'\] must be 1-D"),
        (
            lambda g: {**g, "en": np.arange(1, 14)},
            r"text 0 of 'en' describes image 0, which is not in galleries\['en'\]",
        ),
        (lambda g: {**g, "en": np.array([], dtype=int)}, r"galleries\['en'\] is empty"),
        (lambda g: list(g.values()), r"galleries must map each language"),
    ],
)
def test_bad_galleries_are_refused(change, message):
    images, texts, owners = wit_like()
    with pytest.raises(cm.InputError, match=message):
        cm.evaluate(images, texts, owners, galleries=change(GALLERIES), device="cpu")
    with pytest.raises(cm.InputError, match=message):
        cm.evaluate_scores(
            t2i={lang: t @ images.T for lang, t in texts.items()},
            text_to_image=owners,
            galleries=change(GALLERIES),
        )


def test_mrv_images_must_be_two_or_all():
    images, texts, owners = wit_like()
    for entry in (cm.evaluate, cm.evaluate_sharded):
        with pytest.raises(cm.InputError, match=r"mrv_images must be 'two'.* got 'any'"):
            entry(images, texts, owners, galleries=GALLERIES, mrv_images="any", device="cpu")


# ------------------------------------------------------------------------------- CLI


def test_cli_galleries_and_mrv_images(tmp_path, capsys):
    images, texts, owners = wit_like()
    embeddings = tmp_path / "emb.npz"
    np.savez(
        embeddings,
        image=images,
        **{f"text.{lang}": t for lang, t in texts.items()},
        **{f"text_to_image.{lang}": o for lang, o in owners.items()},
    )
    galleries = tmp_path / "galleries.npz"
    np.savez(galleries, **shuffled(GALLERIES))
    out = tmp_path / "report.json"
    argv = [
        "evaluate",
        embeddings,
        "--device",
        "cpu",
        "--galleries",
        galleries,
        "--mrv-images",
        "all",
        "--json",
        out,
    ]
    assert main([str(a) for a in argv]) == 0
    printed, err = capsys.readouterr()
    assert err == ""
    assert "per-language galleries (en 14, de 14, ja 14 images)" in printed
    expected = cm.evaluate(
        images, texts, owners, galleries=GALLERIES, mrv_images="all", device="cpu"
    )
    loaded = cm.Report.load(out)
    assert_ranks(loaded, {lang: dict(by_dir) for lang, by_dir in expected.ranks.items()})
    assert loaded.mrv_image_counts() == {"i2t": 2, "t2i": 2}
    # Without --galleries: one warning line naming the flag, and the numbers still.
    assert main(["evaluate", str(embeddings), "--device", "cpu"]) == 0
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "ccr-metrics: warning: the texts of the languages"
    )
    assert "Pass --galleries" in lines[0]
    # A bad gallery names the galleries file.
    np.savez(galleries, **{**GALLERIES, "en": np.arange(1, 14)})
    assert (
        main(["evaluate", str(embeddings), "--device", "cpu", "--galleries", str(galleries)]) == 2
    )
    _, err = capsys.readouterr()
    assert err.startswith(f"ccr-metrics: error: {galleries}: text 0 of 'en'")
    assert len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------- processes

WORLD_SIZE = 3
# rank 0 holds images 0-11, rank 1 none, rank 2 images 12-29.
BOUNDS = [(0, 12), (12, 12), (12, 30)]
SHARDED_CASES = [
    {"ties": "expected", "chunk_size": None},
    {"ties": "optimistic", "chunk_size": 5, "mrv_images": "all"},
    {"ties": "pessimistic", "chunk_size": 3, "rerank_k": 3},
]


def shard(rank):
    images, texts, owners = wit_like()
    lo, hi = BOUNDS[rank]
    keep = {lang: (o >= lo) & (o < hi) for lang, o in owners.items()}
    galleries = {lang: g[(g >= lo) & (g < hi)] - lo for lang, g in shuffled(GALLERIES).items()}
    return (
        images[lo:hi],
        {lang: t[keep[lang]] for lang, t in texts.items()},
        {lang: o[keep[lang]] - lo for lang, o in owners.items()},
        galleries,
    )


def case_options(case, texts):
    options = dict(case)
    if "rerank_k" in options:
        table = fine_table(texts)
        options["rerank"] = lambda lang, i, t: table[lang][i.numpy(), t.numpy()]
    return options


def sharded_worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)  # three processes on a few cores: no threads spinning
    _, whole_texts, _ = wit_like()
    with process_group(rank, port, WORLD_SIZE, timeout_s=120):
        images, texts, owners, galleries = shard(rank)
        for i, case in enumerate(SHARDED_CASES):
            report = cm.evaluate_sharded(
                images,
                texts,
                owners,
                galleries=galleries,
                device="cpu",
                **case_options(case, whole_texts),
            )
            report.save(Path(out_dir) / f"case{i}-rank{rank}.json")
        try:  # galleries on one process only: every process refuses
            cm.evaluate_sharded(
                images, texts, owners, galleries=galleries if rank else None, device="cpu"
            )
        except ValueError as exc:
            (Path(out_dir) / f"error-rank{rank}.txt").write_text(str(exc))


@early
def sharded_run(items: Sequence[pytest.Item]) -> Iterator[Future[Path]]:
    """The processes' run of ``sharded_worker``, in the background from the session's start."""
    with gloo_run(sharded_worker, nprocs=WORLD_SIZE) as run:
        yield run


@pytest.fixture(scope="module")
def sharded_out(early_work) -> Iterator[Path]:
    with early_work(sharded_run) as run:
        yield run.result()


@pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"
)
def test_sharded_galleries_equal_evaluate_on_the_whole(sharded_out: Path):
    images, texts, owners = wit_like()
    for i, case in enumerate(SHARDED_CASES):
        expected = cm.evaluate(
            images, texts, owners, galleries=GALLERIES, device="cpu", **case_options(case, texts)
        )
        if "rerank_k" not in case:
            assert_ranks(expected, oracle(images, texts, owners, GALLERIES, case["ties"]))
        for rank in range(WORLD_SIZE):
            got = cm.Report.load(sharded_out / f"case{i}-rank{rank}.json")
            summary = got.to_dict()
            assert summary["settings"].pop("processes") == WORLD_SIZE
            assert summary == expected.to_dict()
    for rank in range(WORLD_SIZE):
        error = (sharded_out / f"error-rank{rank}.txt").read_text()
        assert "every process must be called alike" in error and "'galleries'" in error


# ---------------------------------------------------------------------- real WIT


def hashed(key: str, dim: int = 8) -> np.ndarray:
    """Small-integer embedding of a string, the same on every run."""
    digest = hashlib.sha256(key.encode()).digest()
    return (np.frombuffer(digest[:dim], dtype=np.uint8) % 5).astype(np.float32) - 2


@pytest.mark.skipif(
    not (BENCHMARKS / "iglue" / "wit").is_dir(), reason="needs ../shared/benchmarks"
)
def test_wit_per_language_galleries_equal_the_naive_oracle():
    urls, texts, owners = {}, {}, {}
    for lang in ("en", "ja", "ko"):
        lines = (
            (BENCHMARKS / "iglue" / "wit" / "annotations" / f"test_{lang}.jsonl")
            .read_text(encoding="utf-8")
            .splitlines()
        )
        records = [json.loads(line) for line in lines if line.strip()]
        owner = [urls.setdefault(r["image_url"], len(urls)) for r in records]
        owners[lang] = np.array(owner)
        # A caption's embedding: its image's, moved by 0 or 1 per dimension by its hash.
        texts[lang] = np.stack(
            [
                hashed(r["image_url"]) + hashed(r["caption_reference_description"]) % 2
                for r in records
            ]
        )
    images = np.stack([hashed(url) for url in urls])
    galleries = {lang: np.unique(o) for lang, o in owners.items()}
    # Images by URL (issue 18's 683, 835, 851 and 48 count image_idx, which is not unique).
    assert {lang: len(g) for lang, g in galleries.items()} == {"en": 685, "ja": 842, "ko": 889}
    shared = set(galleries["en"]) & set(galleries["ja"]) & set(galleries["ko"])
    assert len(shared) == 30
    report = cm.evaluate(images, texts, owners, galleries=galleries, device="cpu")
    expected = {}
    for lang, t in texts.items():
        g = galleries[lang]
        s = t.astype(np.float64) @ images[g].astype(np.float64).T  # [M_l, G_l]
        best = s[np.arange(len(t)), np.searchsorted(g, owners[lang])]
        above = (s > best[:, None]).sum(1)
        tied = (s == best[:, None]).sum(1) - 1
        expected[lang] = above + (tied + 2) / 2  # one positive: the expected rank
    for lang in texts:
        np.testing.assert_array_equal(report.ranks[lang]["t2i"], expected[lang])
    assert report.mrv_image_counts()["t2i"] == int(
        (
            np.stack([np.isin(np.arange(len(images)), g) for g in galleries.values()]).sum(0) >= 2
        ).sum()
    )
