"""encode_benchmark: batches, the resumable cache, bad encoder output, and evaluate on top.

The toy model maps each string (an image path or a caption) to a fixed vector drawn from
a seed hashed from it, so every expected embedding is computed here directly.
"""

from __future__ import annotations

import hashlib
import inspect
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ccr_metrics as cm

FIXTURES = Path(__file__).resolve().parent / "data" / "benchmarks"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
D = 6


def vector(s: str) -> np.ndarray:
    seed = int(hashlib.sha256(s.encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed).standard_normal(D).astype(np.float32)


class Toy:
    """Counts its calls; optionally fails on call ``fail_at`` (1-based, over both encoders)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail_at = fail_at

    def _call(self, kind: str, items: list[str]) -> np.ndarray:
        if self.fail_at is not None and len(self.calls) + 1 == self.fail_at:
            raise KeyboardInterrupt("cut short")
        self.calls.append((kind, len(items)))
        return np.stack([vector(s) for s in items])

    def images(self, paths: list[str]) -> np.ndarray:
        return self._call("images", paths)

    def texts(self, captions: list[str], language: str) -> np.ndarray:
        return self._call(language, captions)


def xtd10(languages=("en", "es", "ja")) -> cm.Benchmark:
    return cm.load_benchmark("xtd10", FIXTURES / "xtd10", languages=list(languages))


def expected(b: cm.Benchmark) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    paths = b.image_paths if b.image_paths is not None else b.image_ids
    return np.stack([vector(p) for p in paths]), {
        lang: np.stack([vector(c) for c in b.captions[lang]]) for lang in b.languages
    }


def same(encoded: cm.EncodedBenchmark, b: cm.Benchmark) -> None:
    images, texts = expected(b)
    np.testing.assert_array_equal(encoded.image_embeds.numpy(), images)
    assert list(encoded.text_embeds) == list(b.languages)
    for lang in b.languages:
        np.testing.assert_array_equal(encoded.text_embeds[lang].numpy(), texts[lang])
        np.testing.assert_array_equal(encoded.text_to_image[lang], b.text_to_image[lang])


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_embeddings_are_the_encoders_in_order(batch_size):
    b = xtd10()
    toy = Toy()
    encoded = cm.encode_benchmark(b, toy.images, toy.texts, batch_size=batch_size)
    same(encoded, b)
    n_batches = -(-3 // batch_size)
    assert [k for k, _ in toy.calls] == [
        k for k in ("images", "en", "es", "ja") for _ in range(n_batches)
    ]
    assert all(size <= batch_size for _, size in toy.calls)
    assert encoded.galleries is None and "galleries" not in encoded.to_kwargs()


def test_cache_is_read_by_a_second_run(tmp_path):
    b = xtd10()
    first = Toy()
    cm.encode_benchmark(b, first.images, first.texts, batch_size=2, cache=tmp_path)
    folder = tmp_path / "xtd10-test"
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 4 and all(f.endswith(".safetensors") for f in files)  # no partial left
    assert [f.split("-")[0:2] for f in files if f.startswith("text")] == [
        ["text", "en"],
        ["text", "es"],
        ["text", "ja"],
    ]
    second = Toy()
    again = cm.encode_benchmark(b, second.images, second.texts, batch_size=2, cache=tmp_path)
    assert second.calls == []
    same(again, b)
    # Another selection of languages reuses the parts it shares and encodes only the new one.
    third = Toy()
    more = xtd10(("en", "de"))
    cm.encode_benchmark(more, third.images, third.texts, batch_size=2, cache=tmp_path)
    assert {k for k, _ in third.calls} == {"de"}


@pytest.mark.parametrize("fail_at", [1, 2, 4, 7])
def test_a_run_cut_short_resumes_from_its_last_batch(tmp_path, fail_at):
    b = xtd10()
    broken = Toy(fail_at=fail_at)
    with pytest.raises(KeyboardInterrupt):
        cm.encode_benchmark(b, broken.images, broken.texts, batch_size=2, cache=tmp_path)
    assert len(broken.calls) == fail_at - 1
    resumed = Toy()
    encoded = cm.encode_benchmark(b, resumed.images, resumed.texts, batch_size=2, cache=tmp_path)
    same(encoded, b)
    # Every batch encoded exactly once over the two runs: 4 parts of 2 batches.
    assert len(broken.calls) + len(resumed.calls) == 8
    assert sorted(broken.calls + resumed.calls) == sorted(uncut_calls(b))


def uncut_calls(b: cm.Benchmark) -> list[tuple[str, int]]:
    toy = Toy()
    cm.encode_benchmark(b, toy.images, toy.texts, batch_size=2)
    return toy.calls


def test_resume_with_another_batch_size(tmp_path):
    b = xtd10()
    broken = Toy(fail_at=2)  # the images' first batch of 2 is written, then it stops
    with pytest.raises(KeyboardInterrupt):
        cm.encode_benchmark(b, broken.images, broken.texts, batch_size=2, cache=tmp_path)
    resumed = Toy()
    encoded = cm.encode_benchmark(b, resumed.images, resumed.texts, batch_size=3, cache=tmp_path)
    same(encoded, b)
    assert resumed.calls[0] == ("images", 1)  # only the third image was left


def test_per_language_galleries_and_urls_for_wit():
    b = cm.load_benchmark("wit", FIXTURES / "wit")
    toy = Toy()
    encoded = cm.encode_benchmark(b, toy.images, toy.texts, batch_size=4)
    same(encoded, b)  # WIT names no files: the encoder gets the URLs
    kwargs = encoded.to_kwargs()
    assert sorted(kwargs) == ["galleries", "image_embeds", "text_embeds", "text_to_image"]
    for lang in b.languages:
        assert kwargs["galleries"][lang].tolist() == b.galleries[lang].tolist()


def test_shared_gallery_feeds_evaluate():
    b = xtd10()
    encoded = cm.encode_benchmark(b, Toy().images, Toy().texts, batch_size=2)
    images, texts = expected(b)
    direct = cm.evaluate(images, texts, device="cpu")
    report = cm.evaluate(**encoded.to_kwargs(), device="cpu")
    assert report.to_flat_dict() == direct.to_flat_dict()


@pytest.mark.skipif(
    "galleries" not in inspect.signature(cm.evaluate).parameters,
    reason="evaluate has no galleries= yet",
)
def test_per_language_galleries_feed_evaluate():
    b = cm.load_benchmark("wit", FIXTURES / "wit")
    encoded = cm.encode_benchmark(b, Toy().images, Toy().texts, batch_size=4)
    report = cm.evaluate(**encoded.to_kwargs(), device="cpu")
    images, texts = expected(b)
    for lang in b.languages:  # each language alone, in its own images only
        own = b.galleries[lang]
        position = {int(j): i for i, j in enumerate(own)}
        owners = np.array([position[int(j)] for j in b.text_to_image[lang]])
        alone = cm.evaluate(images[own], {lang: texts[lang]}, {lang: owners}, device="cpu")
        for key, value in alone.to_flat_dict().items():
            if key.startswith(f"{lang}/"):
                assert report.to_flat_dict()[key] == value, key


def test_torch_encoders_and_device():
    b = xtd10(("en",))

    def images(paths):
        return torch.from_numpy(np.stack([vector(p) for p in paths])).double()

    def texts(captions, language):
        return torch.from_numpy(np.stack([vector(c) for c in captions])).double()

    encoded = cm.encode_benchmark(b, images, texts, batch_size=2, device="cpu", progress=False)
    assert encoded.image_embeds.dtype == torch.float64
    assert encoded.image_embeds.device == torch.device("cpu")
    np.testing.assert_array_equal(encoded.text_embeds["en"].numpy(), expected(b)[1]["en"])


def test_progress_bar_counts_the_items(capsys):
    b = xtd10(("en",))
    cm.encode_benchmark(b, Toy().images, Toy().texts, batch_size=2, progress=True)
    assert "6/6" in capsys.readouterr().err  # 3 images and 3 captions


def refused(call, *words: str) -> None:
    with pytest.raises(cm.InputError) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_bad_encoder_output_names_the_function_and_batch():
    b = xtd10(("en",))

    def rows(n):
        return lambda captions, language: np.zeros((n, D), dtype=np.float32)

    def nan_second_batch(captions, language):
        out = np.stack([vector(c) for c in captions])
        if captions[0] == b.captions["en"][2]:
            out[0, 3] = np.nan
        return out

    toy = Toy()
    refused(
        lambda: cm.encode_benchmark(b, toy.images, rows(1), batch_size=2),
        "encode_texts returned shape [1, 6]",
        "batch 0 ('en' captions 0-1)",
        "expected [2, 6]",
    )
    refused(
        lambda: cm.encode_benchmark(b, toy.images, nan_second_batch, batch_size=2),
        "encode_texts returned nan at row 0, column 3 for batch 1 ('en' captions 2-2)",
    )
    refused(
        lambda: cm.encode_benchmark(b, lambda p: np.zeros(len(p)), toy.texts, batch_size=2),
        "encode_images returned shape [2]",
        "batch 0 (images 0-1)",
    )
    refused(
        lambda: cm.encode_benchmark(b, toy.images, rows(2), batch_size=2),
        "encode_texts returned shape [2, 6]",
    )  # the last batch has one caption
    wide = lambda captions, language: np.zeros((len(captions), D + 1))  # noqa: E731
    refused(
        lambda: cm.encode_benchmark(b, toy.images, wide, batch_size=2),
        "encode_texts returned shape [2, 7]",
        "expected [2, 6]",
    )
    refused(
        lambda: cm.encode_benchmark(b, lambda p: list(p), toy.texts, batch_size=2),
        "encode_images returned a list, not an array of numbers",
    )
    refused(
        lambda: cm.encode_benchmark(
            b, lambda p: np.ones((len(p), 2), bool), toy.texts, batch_size=2
        ),
        "dtype bool",
    )


def test_bad_arguments(tmp_path):
    b = xtd10(("en",))
    toy = Toy()
    refused(
        lambda: cm.encode_benchmark("xtd10", toy.images, toy.texts, batch_size=2),
        "benchmark must be a Benchmark",
    )
    refused(
        lambda: cm.encode_benchmark(b, None, toy.texts, batch_size=2),
        "encode_images must be callable",
    )
    refused(
        lambda: cm.encode_benchmark(b, toy.images, toy.texts, batch_size=0),
        "batch_size must be a positive integer",
    )
    refused(
        lambda: cm.encode_benchmark(b, toy.images, toy.texts, batch_size=2, device="gpu7"),
        "device 'gpu7'",
    )
    refused(
        lambda: cm.encode_benchmark(b, toy.images, toy.texts, batch_size=2, device="meta"),
        "device 'meta'",
    )
    if not torch.cuda.is_available():
        refused(
            lambda: cm.encode_benchmark(b, toy.images, toy.texts, batch_size=2, device="cuda"),
            "device 'cuda' is not available",
        )
    refused(
        lambda: cm.encode_benchmark(b, toy.images, toy.texts, batch_size=2, progress="yes"),
        "progress must be",
    )
    (tmp_path / "file").write_text("")
    refused(
        lambda: cm.encode_benchmark(
            b, toy.images, toy.texts, batch_size=2, cache=tmp_path / "file"
        ),
        "is a file",
    )
    assert toy.calls == []


def test_a_damaged_cache_file_is_refused(tmp_path):
    b = xtd10(("en",))
    cm.encode_benchmark(b, Toy().images, Toy().texts, batch_size=2, cache=tmp_path)
    images = next((tmp_path / "xtd10-test").glob("images-*.safetensors"))
    images.write_bytes(b"\x00" * 3)
    refused(
        lambda: cm.encode_benchmark(b, Toy().images, Toy().texts, batch_size=2, cache=tmp_path),
        images.name,
    )


def test_open_clip_example(monkeypatch, capsys):
    pytest.importorskip("open_clip")
    pytest.importorskip("PIL")
    monkeypatch.setattr(sys, "argv", ["open_clip_benchmark.py"])
    runpy.run_path(str(EXAMPLES / "open_clip_benchmark.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "colours (test): 6 images, 2 languages" in out and "R@1" in out
