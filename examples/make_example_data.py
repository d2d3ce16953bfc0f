"""Write examples/multi30k_synthetic.npz: synthetic multilingual embeddings to try the library on.

A Multi30K-shaped toy: 300 images, 5 English and 5 German captions each, 1 French and
1 Czech caption (Czech missing for every tenth image). Each caption is its image's
embedding plus noise whose level depends on the language, so the languages disagree
and Mean Rank Variance is not zero. Deterministic: the same file every run.

``--model consistent`` writes a second model of the same test set (same images, texts
and noise draws) whose languages are closer to each other, as 1-to-K training aims for:
the pair is what docs/consistency.md compares.
"""

import argparse
from pathlib import Path

import numpy as np

LANGUAGES = {"en": (5, 2.2), "de": (5, 2.5), "fr": (1, 2.9), "cs": (1, 3.3)}
# Noise per language of the "consistent" model: a little worse in English, better in
# the languages the baseline handles worst.
CONSISTENT = {"en": 2.3, "de": 2.45, "fr": 2.6, "cs": 2.75}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make(
    n_images: int = 300, dim: int = 48, seed: int = 0, model: str = "baseline"
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = unit(rng.standard_normal((n_images, dim)))
    arrays = {"image": images}
    for language, (captions, noise) in LANGUAGES.items():
        if model == "consistent":
            noise = CONSISTENT[language]
        owners = np.repeat(np.arange(n_images), captions)
        if language == "cs":
            owners = owners[owners % 10 != 0]
        noisy = images[owners] + noise * rng.standard_normal((len(owners), dim)) / np.sqrt(dim)
        arrays[f"text.{language}"] = unit(noisy)
        arrays[f"text_to_image.{language}"] = owners.astype(np.int64)
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = Path(__file__).with_name("multi30k_synthetic.npz")
    parser.add_argument("--out", type=Path, default=default)
    parser.add_argument("--model", choices=["baseline", "consistent"], default="baseline")
    args = parser.parse_args()
    np.savez_compressed(args.out, **make(model=args.model))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
