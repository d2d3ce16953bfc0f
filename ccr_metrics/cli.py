"""The ``ccr-metrics`` command: evaluate embedding, score or rank files from the shell.

``ccr-metrics evaluate FILE`` ranks embeddings, ``ccr-metrics scores FILE`` ranks saved
score matrices, ``ccr-metrics mrv --ranks LANG=PATH ...`` takes MRV of rank arrays
saved by other code, and ``ccr-metrics compare A.json B.json`` compares two saved
reports of the same test set. This module parses arguments, prints and sets exit statuses; files
are read by :mod:`ccr_metrics.io` and every number comes from the library.

Exit statuses: 0 success, 2 bad input (an unknown option or value, a device that is not
available, a missing or malformed file, arrays that do not fit together, an output that
cannot be written), 1 a bug in ccr-metrics, 130 interrupted. Bad input is one line on
stderr, ``ccr-metrics: error: ...``, naming the flag or file; a bug prints its traceback
and a line asking for a report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from ._version import __version__
from .analysis.breakdown import consistency_breakdown
from .analysis.report import Report
from .analysis.stats import METHODS, compare
from .core._validation import InputError, positive_int
from .core.mrv import CAPTION_REDUCTIONS, REDUCTIONS, mean_rank_variance
from .core.ties import DEFAULT_TIES, TIES
from .harness import RERANK_PROTOCOLS, evaluate, evaluate_scores, resolve_device
from .io import (
    RELEASED_DIRECTIONS,
    Embeddings,
    load_embeddings,
    load_rank_matrix,
    load_released_ranks,
    load_reranking,
)

__all__ = ["main"]

PROG = "ccr-metrics"
MRV_FORMAT = "ccr-metrics-mrv/1"
MRV_RELEASED_FORMAT = "ccr-metrics-mrv-released/1"
_REDUCTION_NOTES = {"variance": "paper Eq. 7", "std": "the released code's number"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ccr-metrics`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name; default ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success (``--help`` included), 2 for bad input (usage or data), 1 for a
        bug in ccr-metrics, 130 if interrupted. argparse's exits are returned too, not
        raised as SystemExit.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> np.save(f"{tmp.name}/en.npy", np.array([0, 1, 2, 3]))
    >>> np.save(f"{tmp.name}/de.npy", np.array([0, 3, 2, 0]))
    >>> main(["mrv", "--ranks", f"en={tmp.name}/en.npy", f"de={tmp.name}/de.npy"])
    Mean Rank Variance over 2 languages (en, de), 4 instances:
      variance        0.8125  (paper Eq. 7)                   <- --reduction
      std             0.6250  (the released code's number)
    0
    >>> tmp.cleanup()
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    run: Callable[[argparse.Namespace], None] = args.run
    try:
        run(args)
    except _UsageError as exc:
        return _fail(str(exc), 2)
    except BrokenPipeError:
        # The reader went away (`ccr-metrics ... | head`): stop quietly, as Unix tools
        # do, and keep Python from complaining when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, OSError) as exc:
        # The library raises ValueError (InputError) for bad input only; OSError is a
        # file that cannot be read or written.
        return _fail(str(exc), 2)
    except (MemoryError, torch.cuda.OutOfMemoryError):
        return _fail("out of memory; try a smaller --chunk-size, or --device cpu", 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception:
        traceback.print_exc()
        return _fail(
            "internal error: this is a bug in ccr-metrics, not in your input; please report "
            f"it with the command line and the traceback above (version {__version__})",
            1,
        )
    return 0


class _UsageError(Exception):
    """Arguments argparse accepted one by one but that do not make sense together."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``ccr-metrics: error: ...``."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line with a pointer to ``--help``, and exit 2."""
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def _fail(message: str, status: int) -> int:
    # Library messages may wrap; the contract is one line on stderr.
    one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return status


def _build_parser() -> argparse.ArgumentParser:
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
        "--caption-reduce",  # the flag's name in the first release
        dest="caption_reduction",
        choices=CAPTION_REDUCTIONS,
        default="first",
        help="how text-to-image MRV reduces an image's several captions in a language: "
        "first (the first in file order, whatever its rank), mean, min (the best-ranked) "
        "or median (default: first)",
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
        help="also print the consistency breakdown at cut-off K (default 1): recall "
        "spread, retrieved in all/some/no languages, language pairs, largest spreads",
    )
    _add_plot(
        options,
        "draw recall bars (--ci's intervals as whiskers), the language disagreement "
        "heatmap and rank spreads",
    )

    return options


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
    evaluate_.set_defaults(run=_run_evaluate)


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
    scores.set_defaults(run=_run_scores)


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
        "--reduction",
        choices=REDUCTIONS,
        default="variance",
        help="the MRV asked for: variance (paper Eq. 7) or std (the released code's number); "
        "both are printed (default: variance)",
    )
    _add_json(mrv, "write both reductions, the languages and N as JSON")
    mrv.set_defaults(run=_run_mrv)


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
        type=_positive_int,
        default=2000,
        metavar="N",
        help="random swaps for the p-values (default: 2000)",
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
    comparison.set_defaults(run=_run_compare)


def _add_bootstrap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--n-resamples",
        type=_positive_int,
        default=2000,
        metavar="N",
        help="bootstrap resamples (default: 2000)",
    )
    parser.add_argument(
        "--ci-method",
        choices=METHODS,
        default="percentile",
        help="how intervals are formed (default: percentile)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the resamples (default: 0)")


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


def _positive_int(text: str) -> int:
    try:
        value = positive_int(int(text))
    except ValueError:
        value = None
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _device(text: str) -> torch.device:
    # Checked while parsing, so a missing GPU is reported before a large file is read.
    try:
        return resolve_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _output_path(text: str) -> Path:
    # Checked while parsing, by opening the file for appending (and removing it again
    # if it was not there), so an unwritable output does not cost a long evaluation.
    path = Path(text)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file")
    existed = path.exists()
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {exc.strerror or exc}") from None
    if not existed:
        path.unlink(missing_ok=True)
    return path


def _plot_path(text: str) -> Path:
    from .analysis.plots import plot_format  # matplotlib itself is imported only to draw

    try:
        plot_format(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return _output_path(text)


@contextmanager
def _writing(flag: str, path: Path) -> Iterator[None]:
    """Name the flag and the path when writing an output fails after the work is done."""
    try:
        yield
    except OSError as exc:
        raise InputError(f"{flag} {str(path)!r}: could not write: {exc.strerror or exc}") from None


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
                    self, f"expected LANG=PATH, got {value!r}{_file_hint(str(value))}"
                )
            if lang in files:
                raise argparse.ArgumentError(self, f"language {lang!r} is given twice")
            files[lang] = Path(path)
        setattr(namespace, self.dest, files)


def _run_evaluate(args: argparse.Namespace) -> None:
    image, texts, text_to_image = load_embeddings(args.file)
    with _naming(args.file):
        report = evaluate(image, texts, text_to_image, **_evaluation_options(args))
    _print_report(report, args)


def _run_scores(args: argparse.Namespace) -> None:
    first, candidates, fine = load_reranking(args.file)
    options = {
        **_evaluation_options(args),
        "candidates": candidates,
        "fine": fine,
        "rerank_protocol": args.rerank_protocol,
    }
    with _naming(args.file):
        if isinstance(first, Embeddings):
            report = evaluate(*first, **options)
        else:
            report = evaluate_scores(*first, **options)
    _print_report(report, args)


def _evaluation_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "k": args.ks,
        "ties": args.ties,
        "languages": args.languages,
        "caption_reduction": args.caption_reduction,
        "chunk_size": args.chunk_size,
        "device": args.device,
        "progress": _progress(args),
    }


def _progress(args: argparse.Namespace) -> bool:
    """``--progress`` / ``--no-progress``, or by default whether stderr is a terminal."""
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)


@contextmanager
def _naming(file: Path) -> Iterator[None]:
    """Prefix the file name to a ValueError: the library's messages name arrays only."""
    try:
        yield
    except ValueError as exc:
        raise InputError(f"{file}: {exc}") from None


def _print_report(report: Report, args: argparse.Namespace) -> None:
    if args.ci is not None:
        report = report.with_confidence(
            ci=args.ci,
            n_resamples=args.n_resamples,
            method=args.ci_method,
            seed=args.seed,
            progress=_progress(args),
        )
    breakdown = None
    if args.breakdown is not None:
        # Computed before anything is printed, so its bar does not split the table.
        breakdown = consistency_breakdown(
            report, k=args.breakdown, top=5, progress=_progress(args)
        ).to_dict()
    print(report.to_table())
    if breakdown is not None:
        print()
        print(_breakdown_text(breakdown))
    if args.json is not None:
        with _writing("--json", args.json):
            report.save(args.json)
    if args.csv is not None:
        with _writing("--csv", args.csv):
            report.to_frame().to_csv(args.csv, index=False)
    if args.plot is not None:
        from .analysis.plots import plot_report

        with _writing("--plot", args.plot):
            plot_report(report, args.plot)


def _breakdown_text(breakdown: dict[str, Any]) -> str:
    k = breakdown["k"]
    lines = [f"Consistency across languages ({', '.join(breakdown['languages'])}):"]
    for direction, parts in breakdown["directions"].items():
        spread = parts["recall_spread"][str(k)]
        lines.append(
            f"  {direction}: R@{k} spread {100 * spread['range']:.2f} points "
            f"(best {spread['best']}, worst {spread['worst']})"
        )
        consistency = parts["consistency"]
        if consistency is None:
            continue
        lines.append(
            f"       retrieved in the top {k} in all languages {100 * consistency['all']:.1f}%, "
            f"some {100 * consistency['some']:.1f}%, none {100 * consistency['none']:.1f}%"
        )
        msd = parts["msd"]
        pairs = [
            (value, a, b)
            for i, (a, row) in enumerate(msd.items())
            for b, value in list(row.items())[i + 1 :]
            if value is not None
        ]
        if pairs:
            value, a, b = max(pairs)
            lines.append(
                f"       most disagreeing pair {a}-{b}: mean squared rank difference {value:.1f}"
            )
        for item in parts["largest_spread"]:
            ranks = ", ".join(
                f"{lang} {rank:g}" for lang, rank in item["ranks"].items() if rank is not None
            )
            lines.append(f"       image {item['instance']}: spread {item['spread']:.1f} ({ranks})")
    return "\n".join(lines)


def _run_compare(args: argparse.Namespace) -> None:
    report_a, report_b = Report.load(args.report_a), Report.load(args.report_b)
    stems = (args.report_a.stem, args.report_b.stem)
    names = args.names or (stems if stems[0] != stems[1] else ("A", "B"))
    try:
        result = compare(
            report_a,
            report_b,
            ci=args.ci,
            n_resamples=args.n_resamples,
            n_permutations=args.permutations,
            method=args.ci_method,
            seed=args.seed,
            names=names,
            progress=_progress(args),
        )
    except InputError as exc:
        if exc.argument != "report_b":  # an option, already named by its flag's name
            raise
        # Two reports that each load but differ in what they are over: name both files.
        raise InputError(
            f"{args.report_a} (A) and {args.report_b} (B): {exc}", argument="report_b"
        ) from None
    print(f"{names[0]} = {args.report_a}\n{names[1]} = {args.report_b}")
    print(result.to_table())
    if args.json is not None:
        with _writing("--json", args.json):
            args.json.write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
    if args.csv is not None:
        with _writing("--csv", args.csv):
            result.to_frame().to_csv(args.csv, index=False)
    if args.plot is not None:
        from .analysis.plots import plot_comparison

        with _writing("--plot", args.plot):
            plot_comparison(result, args.plot, reports=(report_a, report_b))


def _file_hint(file: str) -> str:
    """Where a file given to ``mrv`` without ``LANG=`` belongs, as a sentence to append."""
    if Path(file).suffix.lower() in (".npz", ".safetensors", ".pt"):
        return (
            f"; mrv reads rank files: for the MRV of scores or embeddings, run "
            f"'ccr-metrics scores {file}' (score matrices) or 'ccr-metrics evaluate {file}' "
            "(embeddings), which print it with recall"
        )
    return f"; give it with its language: --ranks LANG={file}"


def _run_mrv(args: argparse.Namespace) -> None:
    see = "(see 'ccr-metrics mrv --help')"
    if args.stray:
        raise _UsageError(f"unexpected file {args.stray[0]!r}{_file_hint(args.stray[0])} {see}")
    if args.ranks is None and args.released_dir is None:
        raise _UsageError(f"give rank files with --ranks LANG=PATH or --released-dir DIR {see}")
    if args.released_dir is not None:
        _run_mrv_released(args)
        return
    for flag, value in (("--model", args.model), ("--languages", args.languages)):
        if value is not None:
            raise _UsageError(
                f"{flag} goes with --released-dir; with --ranks, name the languages in "
                "LANG=PATH (see 'ccr-metrics mrv --help')"
            )
    files: dict[str, Path] = args.ranks
    if len(files) < 2:
        raise _UsageError(
            f"MRV needs rank files for at least two languages, got {list(files)} "
            "(see 'ccr-metrics mrv --help')"
        )
    ranks = load_rank_matrix(files)
    values: dict[str, float] = {r: mean_rank_variance(ranks, reduction=r) for r in REDUCTIONS}
    n, k = ranks.shape
    print(f"Mean Rank Variance over {k} languages ({', '.join(files)}), {n} instances:")
    _print_mrv_values(values, args.reduction)
    if args.json is not None:
        payload = {
            "format": MRV_FORMAT,
            "reduction": args.reduction,
            "mrv": values,
            "languages": list(files),
            "n_instances": n,
            "files": {lang: str(path) for lang, path in files.items()},
        }
        with _writing("--json", args.json):
            args.json.write_text(json.dumps(payload, indent=2) + "\n")


def _print_mrv_values(values: dict[str, float], asked: str) -> None:
    for reduction, value in values.items():
        mark = "   <- --reduction" if reduction == asked else ""
        note = f"({_REDUCTION_NOTES[reduction]})"
        print(f"  {reduction:<9} {value:12.4f}  {note:<29}{mark}".rstrip())


def _run_mrv_released(args: argparse.Namespace) -> None:
    """``mrv --released-dir DIR --model NAME``: both directions of the released layout."""
    folder: Path = args.released_dir
    model: str | None = args.model
    see = "(see 'ccr-metrics mrv --help')"
    if not model:
        raise _UsageError(f"--released-dir needs --model NAME, the model in its file names {see}")
    if args.languages is not None:
        repeated = sorted({lang for lang in args.languages if args.languages.count(lang) > 1})
        if repeated:
            raise _UsageError(f"argument --languages: {repeated} given more than once {see}")
        if len(args.languages) < 2:
            raise _UsageError(
                f"argument --languages: MRV needs at least two languages, got "
                f"{args.languages} {see}"
            )
    ranks = load_released_ranks(folder, model, languages=args.languages)
    every = list(dict.fromkeys(lang for by_lang in ranks.values() for lang in by_lang))
    results: dict[str, dict[str, Any]] = {}
    notes = []
    for direction, tag in RELEASED_DIRECTIONS.items():
        by_lang = ranks.get(direction, {})
        if len(by_lang) < 2:
            if by_lang:
                has = f"{tag} files of {model!r} for {', '.join(by_lang)} only"
            else:
                has = f"no {tag} files of {model!r}"
            notes.append(f"{direction}: {has}; no MRV in this direction (it needs two languages)")
            continue
        lacking = [lang for lang in every if lang not in by_lang]
        if lacking:
            notes.append(
                f"{direction}: no {tag} file for {', '.join(lacking)}; its MRV is over "
                f"the {len(by_lang)} languages it has"
            )
        matrix = np.stack(list(by_lang.values()), axis=1)
        results[direction] = {
            "mrv": {r: mean_rank_variance(matrix, reduction=r) for r in REDUCTIONS},
            "languages": list(by_lang),
            "n_instances": matrix.shape[0],
            "files": {lang: str(_released_path(folder, model, tag, lang)) for lang in by_lang},
        }
    if not results:
        found = "; ".join(
            f"{d} ({t}): {', '.join(ranks.get(d, {})) or 'none'}"
            for d, t in RELEASED_DIRECTIONS.items()
        )
        raise _UsageError(
            f"{folder}: MRV needs ranks in at least two languages in a direction, and model "
            f"{model!r} has {found} {see}"
        )
    print(f"Released ranks of model {model!r} in {folder}:")
    for direction, result in results.items():
        tag = RELEASED_DIRECTIONS[direction]
        print(
            f"{direction} ({tag} files): Mean Rank Variance over {len(result['languages'])} "
            f"languages ({', '.join(result['languages'])}), {result['n_instances']} instances:"
        )
        _print_mrv_values(result["mrv"], args.reduction)
    for note in notes:
        print(f"note: {note}")
    if args.json is not None:
        payload = {
            "format": MRV_RELEASED_FORMAT,
            "reduction": args.reduction,
            "directory": str(folder),
            "model": model,
            "directions": results,
            "notes": notes,
        }
        with _writing("--json", args.json):
            args.json.write_text(json.dumps(payload, indent=2) + "\n")


def _released_path(folder: Path, model: str, tag: str, language: str) -> Path:
    return folder / f"{language}_{model}_{tag}.npy"
