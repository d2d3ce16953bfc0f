"""The ``ccr-metrics`` command: evaluate embedding, score or rank files from the shell.

``ccr-metrics evaluate FILE`` ranks embeddings, ``ccr-metrics scores FILE`` ranks saved
score matrices, ``ccr-metrics mrv --ranks LANG=PATH ...`` takes MRV of rank arrays
saved by other code, and ``ccr-metrics compare A.json B.json`` compares two saved
reports of the same test set. This module runs the commands :mod:`ccr_metrics._cli_parser`
parses, prints and sets exit statuses; files are read by :mod:`ccr_metrics.io` and every
number comes from the library (the MRV of rank files from
:mod:`ccr_metrics.analysis._rank_files`).

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
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ._cli_parser import PROG, build_parser, file_hint
from ._version import __version__
from .analysis._rank_files import files_mrv, released_mrv
from .analysis.breakdown import consistency_breakdown
from .analysis.lists_report import evaluate_lists
from .analysis.report import Report
from .analysis.stats import compare
from .core._validation import InputError, check_unique
from .datasets import load_benchmark
from .harness import evaluate, evaluate_scores
from .io import RELEASED_DIRECTIONS, Embeddings, load_arrays, load_embeddings, load_reranking
from .lists_io import load_ranked_lists

__all__ = ["main"]

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
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    run = _COMMANDS[args.command]
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


def _fail(message: str, status: int) -> int:
    # Library messages may wrap; the contract is one line on stderr.
    one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return status


@contextmanager
def _writing(flag: str, path: Path) -> Iterator[None]:
    """Name the flag and the path when writing an output fails after the work is done."""
    try:
        yield
    except OSError as exc:
        raise InputError(f"{flag} {str(path)!r}: could not write: {exc.strerror or exc}") from None


def _run_evaluate(args: argparse.Namespace) -> None:
    _check_breakdown(args)
    image, texts, text_to_image = load_embeddings(args.file)
    options = _evaluation_options(args)
    with _warning_lines():
        with _naming(args.file, args.galleries):
            report = evaluate(image, texts, text_to_image, **options)
        _print_report(report, args)


def _run_scores(args: argparse.Namespace) -> None:
    _check_breakdown(args)
    first, candidates, fine = load_reranking(args.file)
    options = {
        **_evaluation_options(args),
        "candidates": candidates,
        "fine": fine,
        "rerank_protocol": args.rerank_protocol,
    }
    with _warning_lines():
        with _naming(args.file, args.galleries):
            if isinstance(first, Embeddings):
                report = evaluate(*first, **options)
            else:
                report = evaluate_scores(*first, **options)
        _print_report(report, args)


def _check_breakdown(args: argparse.Namespace) -> None:
    """Refuse a --breakdown cut-off the report has no recall at, before any file is read."""
    if args.breakdown is not None and args.breakdown not in args.ks:
        raise _UsageError(
            f"argument --breakdown: {args.breakdown} is not one of the --k cut-offs "
            f"({' '.join(map(str, args.ks))}); the breakdown's recall spread is at R@K, so "
            f"add {args.breakdown} to --k"
        )


def _evaluation_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "k": args.ks,
        "ties": args.ties,
        "languages": args.languages,
        "caption_reduction": args.caption_reduction,
        "chunk_size": args.chunk_size,
        "device": args.device,
        "progress": _progress(args),
        "galleries": None if args.galleries is None else load_arrays(args.galleries),
        "mrv_images": args.mrv_images,
    }


def _progress(args: argparse.Namespace) -> bool:
    """``--progress`` / ``--no-progress``, or by default whether stderr is a terminal."""
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)


@contextmanager
def _naming(file: Path, galleries: Path | None = None) -> Iterator[None]:
    """Prefix the file name to a ValueError: the library's messages name arrays only.

    An error in the galleries names the ``--galleries`` file instead.
    """
    try:
        yield
    except ValueError as exc:
        argument = getattr(exc, "argument", None) or ""
        named = galleries if galleries is not None and argument.startswith("galleries") else file
        raise InputError(f"{named}: {exc}") from None


@contextmanager
def _warning_lines() -> Iterator[None]:
    """Print the block's warnings as lines on stderr, ``ccr-metrics: warning: ...``.

    Printed once the block (the whole command) succeeds: bad input, or an output that
    cannot be written, stays one line on stderr, the error.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)  # every run says it, not the first
        yield
    for warning in caught:
        # The library names its argument (galleries=); the command names its flag.
        text = " ".join(str(warning.message).split()).replace("galleries=", "--galleries")
        print(f"{PROG}: warning: {text}", file=sys.stderr)


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


def _run_mrv(args: argparse.Namespace) -> None:
    see = "(see 'ccr-metrics mrv --help')"
    if args.stray:
        raise _UsageError(f"unexpected file {args.stray[0]!r}{file_hint(args.stray[0])} {see}")
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
    with _as_usage(see, {"instances": "--instances"}):
        result = files_mrv(files, instances=args.instances)
    print(
        f"Mean Rank Variance over {len(result.languages)} languages "
        f"({', '.join(result.languages)}), {result.instances_text()}:"
    )
    _print_mrv_values(result.mrv, args.reduction)
    if args.json is not None:
        payload = {
            "format": MRV_FORMAT,
            "reduction": args.reduction,
            **result.to_dict(),
            "instances": args.instances,
        }
        with _writing("--json", args.json):
            args.json.write_text(json.dumps(payload, indent=2) + "\n")


@contextmanager
def _as_usage(see: str, flags: dict[str, str]) -> Iterator[None]:
    """Report the library's InputError about an argument of ``flags`` as a usage error.

    ``flags`` maps the argument the error names to the flag to name, as argparse does
    (``"argument --instances: ..."``), or to ``""`` to name none.
    """
    try:
        yield
    except InputError as exc:
        if exc.argument not in flags:
            raise
        flag = flags[exc.argument]
        raise _UsageError(f"{f'argument {flag}: ' if flag else ''}{exc} {see}") from None


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
        with _as_usage(see, {"--languages": ""}):
            check_unique("--languages", args.languages)
        if len(args.languages) < 2:
            raise _UsageError(
                f"argument --languages: MRV needs at least two languages, got "
                f"{args.languages} {see}"
            )
    with _as_usage(see, {"instances": "--instances", "released_dir": ""}):
        released = released_mrv(folder, model, languages=args.languages, instances=args.instances)
    print(f"Released ranks of model {model!r} in {folder}:")
    for direction, result in released.directions.items():
        tag = RELEASED_DIRECTIONS[direction]
        print(
            f"{direction} ({tag} files): Mean Rank Variance over {len(result.languages)} "
            f"languages ({', '.join(result.languages)}), {result.instances_text()}:"
        )
        _print_mrv_values(result.mrv, args.reduction)
    for note in released.notes:
        print(f"note: {note}")
    if args.json is not None:
        payload = {
            "format": MRV_RELEASED_FORMAT,
            "reduction": args.reduction,
            "directory": str(folder),
            "model": model,
            "instances": args.instances,
            "directions": {d: result.to_dict() for d, result in released.directions.items()},
            "notes": released.notes,
        }
        with _writing("--json", args.json):
            args.json.write_text(json.dumps(payload, indent=2) + "\n")


def _run_lists(args: argparse.Namespace) -> None:
    see = "(see 'ccr-metrics lists --help')"
    if "{language}" not in args.lists:
        raise _UsageError(f"argument --lists: {args.lists!r} has no {{language}} {see}")
    with _as_usage(see, {"--languages": ""}):
        check_unique("--languages", args.languages)
    if (args.benchmark is None) != (args.root is None):
        raise _UsageError(f"--benchmark NAME and --root DIR go together {see}")
    if args.benchmark is None and args.n_images is None:
        raise _UsageError(f"give --n-images N, or --benchmark NAME --root DIR {see}")
    n, benchmark, text_to_image, galleries = args.n_images, None, None, None
    if args.benchmark is not None:
        benchmark = load_benchmark(args.benchmark, args.root, languages=args.languages)
        if n is not None and n != len(benchmark.image_ids):
            raise _UsageError(
                f"--n-images {n}, but {args.benchmark} has {len(benchmark.image_ids)} images {see}"
            )
        n, text_to_image = len(benchmark.image_ids), benchmark.text_to_image
        galleries = None if benchmark.shared_gallery else benchmark.galleries
    lists = {}
    for lang in args.languages:
        path = args.lists.replace("{language}", lang)
        try:
            lists[lang] = load_ranked_lists(
                path, format=args.format, benchmark=benchmark, language=lang
            )
        except InputError as exc:
            if exc.argument != "query_ids":
                raise
            raise _UsageError(
                f"{path}: a TREC run names queries and images by id; give --benchmark and "
                f"--root to map them {see}"
            ) from None
    report = evaluate_lists(
        lists, text_to_image, n_images=n, k=args.ks, direction="t2i", galleries=galleries
    )
    print(report.to_table())
    if args.json is not None:
        with _writing("--json", args.json):
            report.save(args.json)


# What each command of the parser runs.
_COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "evaluate": _run_evaluate,
    "scores": _run_scores,
    "mrv": _run_mrv,
    "compare": _run_compare,
    "lists": _run_lists,
}
