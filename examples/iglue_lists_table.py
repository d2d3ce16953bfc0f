"""The table of docs/benchmarks.md: IGLUE's released ranked lists of four models, read back.

IGLUE released, for mUNITER, xUNITER, UC2 and M3P (zero-shot, xFlickr&CO test, every
language), the 20 best images of every caption. This reads them with
``load_ranked_lists``, evaluates them with ``evaluate_lists`` and prints two Markdown
tables: text-to-image recall per language, and the consistency across languages (MRV
bounds, the share of images found within 10 in every language and in none).

    python examples/iglue_lists_table.py ../shared/benchmarks/iglue/results/xflickrco

The folder is IGLUE's ``results/xflickrco``: ``zero_shot/{model}/test_{lang}_0_result.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ccr_metrics as cm

MODELS = {"mUNITER": "ctrl_muniter", "xUNITER": "ctrl_xuniter", "UC2": "uc2", "M3P": "m3p"}
LANGUAGES = ("en", "de", "es", "id", "ja", "ru", "tr", "zh")
N_IMAGES = 2000


def reports(folder: Path) -> dict[str, cm.ListsReport]:
    out = {}
    for name, model in MODELS.items():
        lists = {
            lang: cm.load_ranked_lists(folder / "zero_shot" / model / f"test_{lang}_0_result.json")
            for lang in LANGUAGES
        }
        out[name] = cm.evaluate_lists(lists, n_images=N_IMAGES, k=(1, 5, 10))
    return out


def recall_table(by_model: dict[str, cm.ListsReport]) -> list[str]:
    lines = [
        "| model | R@K | " + " | ".join(LANGUAGES) + " |",
        "|---|---|" + "---:|" * len(LANGUAGES),
    ]
    for name, report in by_model.items():
        recall = report.recall()
        for k in report.ks:
            cells = " | ".join(f"{100 * recall[lang]['t2i'][k]:.2f}" for lang in LANGUAGES)
            lines.append(f"| {name} | R@{k} | {cells} |")
    return lines


def consistency_table(by_model: dict[str, cm.ListsReport]) -> list[str]:
    lines = [
        "| model | MRV std bounds (the released code's form) | MRV std at depth 20 "
        "| MRV variance bounds (Eq. 7) "
        "| within 10 in every language | in none |",
        "|---|---|---:|---|---:|---:|",
    ]
    for name, report in by_model.items():
        std = report.mrv_bounds("t2i", "std")
        variance = report.mrv_bounds("t2i", "variance")
        found = report.consistency("t2i", 10)
        lines.append(
            f"| {name} | [{std[0]:.2f}, {std[1]:.2f}] | {report.mrv_at_depth('t2i', 'std'):.2f} "
            f"| [{variance[0]:.2f}, {variance[1]:.2f}] | {100 * found['all']:.2f}% "
            f"| {100 * found['none']:.2f}% |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="IGLUE's results/xflickrco folder")
    args = parser.parse_args(argv)
    by_model = reports(args.folder)
    print("\n".join([*recall_table(by_model), "", *consistency_table(by_model)]))


if __name__ == "__main__":
    main()
