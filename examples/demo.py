"""Print the paper's table (R@1/5/10 per language and direction, mean recall, MRV).

Runs on the bundled examples/multi30k_synthetic.npz (or a file given as argument with
keys ``image``, ``text.<lang>`` and optionally ``text_to_image.<lang>``), using only the public
functional API: score matrices -> ranks -> recall and MRV.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import ccr_metrics as cm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "file", nargs="?", type=Path, default=Path(__file__).with_name("multi30k_synthetic.npz")
    )
    parser.add_argument("--ties", choices=cm.TIES, default=cm.DEFAULT_TIES)
    args = parser.parse_args()

    with np.load(args.file, allow_pickle=False) as data:
        images = data["image"]
        languages = [key.split(".", 1)[1] for key in data.files if key.startswith("text.")]
        texts = {lang: data[f"text.{lang}"] for lang in languages}
        # As the CLI reads the file: without text_to_image.<lang>, text i describes image i.
        owners = {
            lang: data[key] if (key := f"text_to_image.{lang}") in data.files else np.arange(len(t))
            for lang, t in texts.items()
        }

    n_images = len(images)
    ranks: dict[str, dict[str, np.ndarray]] = {}
    tr_columns, ir_columns, present_columns = [], [], []
    for lang in languages:
        scores = images @ texts[lang].T  # [N, M_lang]
        present = np.bincount(owners[lang], minlength=n_images) > 0
        # An image without a caption in this language is no query for it: "miss" marks
        # it, and it is then left out of recall and masked out of MRV.
        i2t = cm.image_to_text_ranks(scores, owners[lang], ties=args.ties, empty="miss")
        t2i = cm.text_to_image_ranks(scores.T, owners[lang], ties=args.ties)
        ranks[lang] = {"i2t": i2t[present], "t2i": t2i}
        tr_columns.append(np.where(present, i2t, np.nan))
        ir_columns.append(
            cm.ranks_per_image(t2i, owners[lang], n_images, caption_reduction="first")[0]
        )
        present_columns.append(present)

    table = cm.multilingual_recall(ranks)
    rows = {
        lang: {
            **{f"{d} R@{k}": 100 * v for d in ("i2t", "t2i") for k, v in by_dir[d].items()},
            "mean recall": 100 * table["mean_recall"][lang],
        }
        for lang, by_dir in table["recall"].items()
    }
    average = table["average"]
    rows["average"] = {
        **{f"{d} R@{k}": 100 * v for d, by_k in average["recall"].items() for k, v in by_k.items()},
        "mean recall": 100 * average["mean_recall"],
    }
    print(f"Recall (%) on {args.file.name}: {n_images} images, ties={args.ties!r}")
    print(pd.DataFrame(rows).T.round(2).to_string())

    mask = np.stack(present_columns, axis=1)
    print(f"\nMean Rank Variance over {', '.join(languages)} (MRV_{len(languages)}):")
    for name, columns in (("i2t", tr_columns), ("t2i", ir_columns)):
        stacked = np.stack(columns, axis=1)
        var = cm.mean_rank_variance(stacked, mask=mask)
        std = cm.mean_rank_variance(stacked, mask=mask, reduction="std")
        print(f"  {name}: variance (paper Eq. 7) {var:8.2f}   std (released code) {std:6.2f}")


if __name__ == "__main__":
    main()
