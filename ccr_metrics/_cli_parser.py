"""The ``ccr-metrics`` command line's arguments: its parser, one sub-parser per command.

:mod:`ccr_metrics.cli` runs what :func:`build_parser` parses (``args.command`` names the
command). Values that can be checked while parsing are: counts, levels, devices and
output paths, so that a bad one is refused before a long evaluation, in argparse's one
line.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch

from ._outputs import check_output
from ._version import __version__
from .analysis._bootstrap import MAX_RESAMPLES
from .analysis.stats import METHODS
from .core._validation import positive_int
from .core.mrv import CAPTION_REDUCTIONS, MRV_IMAGES, REDUCTIONS
from .core.ties import DEFAULT_TIES, TIES
from .datasets import BENCHMARKS
from .harness import RERANK_PROTOCOLS, resolve_device
from .lists_io import LIST_FORMATS

PROG = "ccr-metrics"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``ccr-metrics: error: ...``."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line with a pointer to ``--help``, and exit 2."""
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Recall@K and Mean Rank Variance for cross-lingual cross-modal retrieval.",
        epilog="Run 'ccr-metrics COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", required=True)

    options = _evaluation_parser()
    _add_evaluate(commands, options)
    _add_scores(commands, options)
    _add_mrv(commands)
    _add_compare(commands)
    _add_lists(commands)
    return parser


def _evaluation_parser() -> argparse.ArgumentParser:
    """Build the options ``evaluate`` and ``scores`` share."""
    options = _Parser(add_help=False)
    options.add_argument(
        "-k",
        "--k",
        dest="ks",
        nargs="+",
        type=_positive_int,
        default=[1, 5, 10],
        metavar="K",
        help="recall cut-offs (default: 1 5 10)",
    )
    options.add_argument(
        "--ties",
        choices=TIES,
        default=DEFAULT_TIES,
        help=f"how scores tied with the positive count (default: {DEFAULT_TIES})",
    )
    options.add_argument(
        "--languages",
        nargs="+",
        metavar="LANG",
        help="languages to evaluate and take MRV over, in this order (default: all in the file)",
    )
    options.add_argument(
        "--caption-reduction",
        dest="caption_reduction",
        choices=CAPTION_REDUCTIONS,
        default="first",
        help="how text-to-image MRV reduces an image's several captions in a language: "
        "first (the first in file order, whatever its rank), mean, min (the best-ranked) "
        "or median (default: first)",
    )
    options.add_argument(
        "--galleries",
        type=Path,
        metavar="FILE",
        help="per-language galleries: a .npz, .safetensors or .pt file (or a folder of "
        ".npy) with one int array per language, keyed by the language, of the images it "
        "covers (rows of the image set); each language is then ranked among its own "
        "images (default: all images, with a warning where the languages' texts cover "
        "different images)",
    )
    options.add_argument(
        "--mrv-images",
        choices=MRV_IMAGES,
        default="two",
        help="the images MRV is taken over: two (those with texts in two or more of the "
        "languages) or all (in every one) (default: two)",
    )
    options.add_argument(
        "--device",
        type=_device,
        default="auto",
        help="auto (CUDA when available), cpu, cuda or cuda:N (default: auto)",
    )
    options.add_argument(
        "--chunk-size",
        type=_positive_int,
        metavar="N",
        help="queries ranked per block; lower it to use less memory (default: automatic)",
    )
    _add_outputs(options)
    return options


def _add_outputs(options: argparse.ArgumentParser) -> None:
    """Add the outputs ``evaluate`` and ``scores`` share: files, intervals, breakdown, plot."""
    _add_json(options, "write the full report, ranks included, as JSON (fractions)")
    options.add_argument(
        "--csv",
        type=_output_path,
        metavar="PATH",
        help="write recall per language and direction as CSV (fractions)",
    )
    _add_progress(options, "ranking, --ci's bootstrap and --breakdown")
    options.add_argument(
        "--ci",
        type=_level,
        metavar="LEVEL",
        help="add bootstrap confidence intervals at this level, e.g. 0.95 (images resampled)",
    )
    _add_bootstrap(options)
    options.add_argument(
        "--breakdown",
        type=_positive_int,
        nargs="?",
        const=1,
        metavar="K",
        help="also print the consistency breakdown at cut-off K (default 1), one of the --k "
        "cut-offs: recall spread, retrieved in all/some/no languages, language pairs, "
        "largest spreads",
    )
    _add_plot(
        options,
        "draw recall bars (--ci's intervals as whiskers), the language disagreement "
        "heatmap and rank spreads",
    )


def _add_evaluate(commands: Any, options: argparse.ArgumentParser) -> None:
    evaluate_ = commands.add_parser(
        "evaluate",
        parents=[options],
        help="rank image and text embeddings",
        description="Rank image and text embeddings (dot products; normalise for cosine) "
        "and print recall per language and direction, mean recall and MRV.",
    )
    evaluate_.add_argument(
        "file",
        type=Path,
        metavar="FILE",
        help="a .npz, .safetensors or .pt file with keys image [N, D], text.<lang> [M, D] "
        "and optionally text_to_image.<lang> [M]",
    )


def _add_scores(commands: Any, options: argparse.ArgumentParser) -> None:
    scores = commands.add_parser(
        "scores",
        parents=[options],
        help="rank saved score matrices",
        description="Rank saved score matrices and print recall per language and "
        "direction, mean recall and MRV.",
    )
    scores.add_argument(
        "file",
        type=Path,
        metavar="FILE",
        help="a .npz, .safetensors or .pt file (or a folder of .npy) with keys i2t.<lang> "
        "[N, M] and/or t2i.<lang> [M, N], and optionally text_to_image.<lang> [M]; for a "
        "re-ranking model also <dir>_candidates.<lang> [Q, k] and <dir>_fine.<lang> [Q, k], "
        "the first stage as score matrices or as embeddings (image, text.<lang>)",
    )
    scores.add_argument(
        "--rerank-protocol",
        choices=RERANK_PROTOCOLS,
        default="cascade",
        help="how a re-ranking model's ranks are read: cascade (the candidates by their "
        "fine scores, then the rest by first-stage score) or filled (the released code's "
        "matrix: fine scores at the candidates, -100 elsewhere) (default: cascade)",
    )


def _add_mrv(commands: Any) -> None:
    mrv = commands.add_parser(
        "mrv",
        help="Mean Rank Variance of saved rank arrays",
        description="Mean Rank Variance of per-language rank arrays saved by other code "
        "(0-based or 1-based: MRV does not depend on the offset). Every file ranks the "
        "same N instances in the same order. Give the files one by one with --ranks, or "
        "the folder the authors' released code writes with --released-dir and --model.",
    )
    # Not required=True: _run_mrv asks for one itself, after pointing a stray file
    # (`ccr-metrics mrv scores.npz`) to the command that reads it.
    source = mrv.add_mutually_exclusive_group()
    mrv.add_argument("stray", nargs="*", help=argparse.SUPPRESS)
    source.add_argument(
        "--ranks",
        nargs="+",
        action=_RankFiles,
        metavar="LANG=PATH",
        help="a rank file per language: .npy (1-D), or .txt / .csv with one rank per line",
    )
    source.add_argument(
        "--released-dir",
        type=Path,
        metavar="DIR",
        help="the released code's ranks/ folder, read in both directions: "
        "<lang>_<model>_tr.npy (i2t) and <lang>_<model>_ir.npy (t2i); needs --model",
    )
    mrv.add_argument(
        "--model",
        metavar="NAME",
        help="with --released-dir: the model name in the file names (may contain '_')",
    )
    mrv.add_argument(
        "--languages",
        nargs="+",
        metavar="LANG",
        help="with --released-dir: the languages to take MRV over, in this order "
        "(default: all found; en, de, ja, zh first, then the others alphabetically)",
    )
    mrv.add_argument(
        "--instances",
        type=_positive_int,
        metavar="N",
        help="take MRV over the first N instances of the files only, as the released "
        "analysis does with 2000 (default: all)",
    )
    mrv.add_argument(
        "--reduction",
        choices=REDUCTIONS,
        default="variance",
        help="the MRV asked for: variance (paper Eq. 7) or std (the released code's number); "
        "both are printed (default: variance)",
    )
    _add_json(mrv, "write both reductions, the languages and N as JSON")


def _add_compare(commands: Any) -> None:
    comparison = commands.add_parser(
        "compare",
        help="compare two saved reports of the same test set",
        description="Difference (B - A) of every number of two reports saved with "
        "--json, with a paired bootstrap interval and a paired permutation p-value.",
    )
    comparison.add_argument("report_a", type=Path, metavar="A.json", help="the baseline")
    comparison.add_argument("report_b", type=Path, metavar="B.json", help="the model compared")
    comparison.add_argument(
        "--ci",
        type=_level,
        default=0.95,
        metavar="LEVEL",
        help="confidence level of the intervals (default: 0.95)",
    )
    _add_bootstrap(comparison)
    comparison.add_argument(
        "--permutations",
        type=_resample_count,
        default=2000,
        metavar="N",
        help=f"random swaps for the p-values, at most {MAX_RESAMPLES} (default: 2000)",
    )
    comparison.add_argument(
        "--names",
        nargs=2,
        metavar=("A", "B"),
        help="names of the two models in the table and the plot (default: the file names "
        "without .json, or A and B when those are the same)",
    )
    _add_progress(comparison, "the bootstrap and the permutations")
    _add_json(comparison, "write every difference, interval and p-value as JSON")
    comparison.add_argument(
        "--csv", type=_output_path, metavar="PATH", help="write the differences as CSV"
    )
    _add_plot(
        comparison,
        "draw both models' recall side by side (whiskers: the interval of B - A) and "
        "their rank spreads",
    )


def _add_lists(commands: Any) -> None:
    lists = commands.add_parser(
        "lists",
        help="recall and MRV bounds of released ranked lists",
        description="Recall@K (exact up to the lists' depth d), and mean rank, median rank "
        "and MRV as exact bounds, of text-to-image ranked lists: one file per language, "
        "each query's d best images. A rank beyond a list is any of d+1..gallery size.",
    )
    lists.add_argument(
        "--lists",
        required=True,
        metavar="PATTERN",
        help="each language's file, {language} standing for it, e.g. "
        "'zero_shot/uc2/test_{language}_0_result.json'",
    )
    lists.add_argument(
        "--languages", required=True, nargs="+", metavar="LANG", help="the languages, in order"
    )
    lists.add_argument(
        "--n-images",
        type=_positive_int,
        metavar="N",
        help="the images of the benchmark; without --benchmark, text i describes image i",
    )
    lists.add_argument(
        "--benchmark",
        choices=BENCHMARKS,
        metavar="NAME",
        help="read the benchmark's annotations from --root: each text's image, the image "
        "ids a TREC run names, per-language galleries",
    )
    lists.add_argument("--root", type=Path, metavar="DIR", help="the benchmark's folder")
    lists.add_argument(
        "--format",
        choices=LIST_FORMATS,
        help="the files' format (default: by suffix: .json iglue, .npy npy, .trec .run .txt trec)",
    )
    lists.add_argument(
        "-k",
        "--k",
        dest="ks",
        nargs="+",
        type=_positive_int,
        default=[1, 5, 10],
        metavar="K",
        help="recall cut-offs, each at most the depth (default: 1 5 10)",
    )
    _add_json(lists, "write the report, rank bounds included, as JSON (fractions)")


def _add_bootstrap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--n-resamples",
        type=_resample_count,
        default=2000,
        metavar="N",
        help=f"bootstrap resamples, at most {MAX_RESAMPLES} (default: 2000)",
    )
    parser.add_argument(
        "--ci-method",
        choices=METHODS,
        default="percentile",
        help="how intervals are formed (default: percentile)",
    )
    parser.add_argument(
        "--seed", type=_seed, default=0, help="seed of the resamples, >= 0 (default: 0)"
    )


def _add_progress(parser: argparse.ArgumentParser, phases: str) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help=f"show progress bars on stderr for {phases} (default: when stderr is a terminal)",
    )


def _add_plot(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--plot",
        type=_plot_path,
        metavar="PATH",
        help=f"{help} into a .png, .pdf or .svg file, by its suffix (needs matplotlib: "
        "pip install 'ccr-metrics[plots]')",
    )


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a level like 0.95, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a level between 0 and 1, got {text!r}")
    return value


def _add_json(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--json", type=_output_path, metavar="PATH", help=help)


def _decimal(text: str) -> int | None:
    """``text`` as an int if it is written in plain decimal digits, else None.

    Python's int() also reads '1_0' as 10 and other scripts' digits; a cut-off or a
    count written so is more likely a typo than meant.
    """
    digits = text.strip().removeprefix("+")
    if not digits.isascii() or not digits.isdigit():
        return None
    try:
        return int(digits)
    except ValueError:  # beyond Python's limit on the digits of an int
        return None


def _positive_int(text: str) -> int:
    value = positive_int(_decimal(text))
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _resample_count(text: str) -> int:
    value = positive_int(_decimal(text), MAX_RESAMPLES)
    if value is None:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer at most {MAX_RESAMPLES}, got {text!r}"
        )
    return value


def _seed(text: str) -> int:
    value = _decimal(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _device(text: str) -> torch.device:
    # Checked while parsing, so a missing GPU is reported before a large file is read.
    try:
        return resolve_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _output_path(text: str) -> Path:
    # Checked while parsing (never opened to write: a FIFO would block), so that an
    # output that cannot be written does not cost a long evaluation.
    try:
        return check_output(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _plot_path(text: str) -> Path:
    from .analysis.plots import plot_format  # matplotlib itself is imported only to draw

    try:
        plot_format(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return _output_path(text)


class _RankFiles(argparse.Action):
    """Collect ``LANG=PATH`` values (also over repeated ``--ranks``) into a dict."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        files: dict[str, Path] = dict(getattr(namespace, self.dest) or {})
        for value in values or []:
            lang, _, path = str(value).partition("=")
            if not lang or not path:
                raise argparse.ArgumentError(
                    self, f"expected LANG=PATH, got {value!r}{file_hint(str(value))}"
                )
            if lang in files:
                raise argparse.ArgumentError(self, f"language {lang!r} is given twice")
            files[lang] = Path(path)
        setattr(namespace, self.dest, files)


def file_hint(file: str) -> str:
    """Where a file given to ``mrv`` without ``LANG=`` belongs, as a sentence to append."""
    if Path(file).suffix.lower() in (".npz", ".safetensors", ".pt"):
        return (
            f"; mrv reads rank files: for the MRV of scores or embeddings, run "
            f"'ccr-metrics scores {file}' (score matrices) or 'ccr-metrics evaluate {file}' "
            "(embeddings), which print it with recall"
        )
    return f"; give it with its language: --ranks LANG={file}"
