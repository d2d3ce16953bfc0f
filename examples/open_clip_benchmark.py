"""From an open_clip model to the Recall@K / MRV table with encode_benchmark, offline.

The model is built with random weights (``pretrained=None``: nothing is downloaded), and
the benchmark is a handful of generated images, one colour each, with an English and a
German caption. With random weights the recall is near chance: the example shows the
pipeline (encoders on batches, the cache, evaluate), not a model. For a real benchmark,
read it with ``cm.load_benchmark`` and load pretrained weights instead.

Needs the ``open_clip`` extra: ``pip install ".[open_clip]"``.

    python examples/open_clip_benchmark.py [--model ViT-B-32] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import ccr_metrics as cm

COLOURS = {  # name: (RGB, German)
    "red": ((210, 40, 40), "rot"),
    "green": ((40, 170, 60), "grün"),
    "blue": ((40, 70, 200), "blau"),
    "yellow": ((230, 210, 40), "gelb"),
    "purple": ((120, 50, 160), "lila"),
    "orange": ((240, 140, 30), "orange"),
}


def make_benchmark(folder: Path) -> cm.Benchmark:
    """Write one noisy 64x64 PNG per colour to ``folder``; caption each in en and de."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for name, (rgb, _) in COLOURS.items():
        pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (64, 64, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{name}.png")
        names.append(f"{name}.png")
    captions = {
        "en": [f"a photo of something {name}" for name in COLOURS],
        "de": [f"ein Foto von etwas {german}" for _, german in COLOURS.values()],
    }
    owners = {lang: np.arange(len(names)) for lang in captions}
    return cm.Benchmark("colours", "test", names, captions, owners, image_paths=names)


def main(argv: list[str] | None = None) -> cm.Report:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="ViT-B-32", help="an open_clip model name")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args(argv)

    import open_clip
    from PIL import Image

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(args.model, pretrained=None)
    model.eval()
    tokenizer = open_clip.get_tokenizer(args.model)

    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        benchmark = make_benchmark(images)
        print(benchmark)

        @torch.no_grad()
        def encode_images(paths: list[str]) -> torch.Tensor:
            batch = torch.stack([preprocess(Image.open(images / p).convert("RGB")) for p in paths])
            return torch.nn.functional.normalize(model.encode_image(batch), dim=-1)

        @torch.no_grad()
        def encode_texts(captions: list[str], language: str) -> torch.Tensor:
            return torch.nn.functional.normalize(model.encode_text(tokenizer(captions)), dim=-1)

        cache = Path(tmp) / "cache"
        encoded = cm.encode_benchmark(
            benchmark, encode_images, encode_texts, batch_size=args.batch_size, cache=cache
        )
        # A second run reads the cache instead of calling the model.
        encoded = cm.encode_benchmark(
            benchmark, encode_images, encode_texts, batch_size=args.batch_size, cache=cache
        )
        print(encoded)
        report = cm.evaluate(**encoded.to_kwargs(), device="cpu")
    print(report.to_table())
    return report


if __name__ == "__main__":
    main()
