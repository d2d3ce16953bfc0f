"""Write examples/multi30k_synthetic.npz: synthetic multilingual embeddings to try the library on.

A Multi30K-shaped toy: 300 images, 5 English and 5 German captions each, 1 French and
1 Czech caption (Czech missing for every tenth image). Each caption is its image's
embedding plus noise whose level depends on the language, so the languages disagree
and Mean Rank Variance is not zero. Deterministic: the same file every run.
"""

import argparse
from pathlib import Path

import numpy as np

LANGUAGES = {"en": (5, 2.2), "de": (5, 2.5), "fr": (1, 2.9), "cs": (1, 3.3)}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make(n_images: int = 300, dim: int = 48, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = unit(rng.standard_normal((n_images, dim)))
    arrays = {"image": images}
    for language, (captions, noise) in LANGUAGES.items():
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
    args = parser.parse_args()
    np.savez_compressed(args.out, **make())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
