"""Read released ranked lists: IGLUE result JSON, TREC run files and ``.npy`` arrays.

A ranked list is, per query, the indices of its ``d`` best gallery items, best first:
an int64 array ``[Q, d]``, what :func:`~ccr_metrics.evaluate_lists` takes. Files are
untrusted: JSON is parsed as data, ``.npy`` is read with ``allow_pickle=False``, and
every malformed entry is refused naming the file and the line or query.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ._containers import read_npy
from .core._lists import check_in, checked_lists
from .core._validation import InputError, check_choice

__all__ = ["LIST_FORMATS", "load_ranked_lists"]

PathLike = str | os.PathLike[str]
IntArray = npt.NDArray[np.int64]

#: The formats :func:`load_ranked_lists` reads.
LIST_FORMATS = ("iglue", "trec", "npy")
# The format each suffix implies when format=None.
_SUFFIX_FORMATS = {".json": "iglue", ".npy": "npy", ".trec": "trec", ".run": "trec", ".txt": "trec"}


def load_ranked_lists(
    path: PathLike,
    *,
    format: str | None = None,
    query_ids: Sequence[Any] | None = None,
    gallery_ids: Sequence[Any] | None = None,
    benchmark: Any = None,
    language: str | None = None,
) -> IntArray:
    r"""Read one language's ranked lists: per query, the indices of its best items.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    format : {"iglue", "trec", "npy"}, optional
        ``"iglue"``: IGLUE's result JSON (``test_{lang}_0_result.json``), a JSON list
        with one list of gallery indices per query, best first. ``"trec"``: a TREC run
        file, one line ``qid Q0 docid rank score tag`` per retrieved item (the second
        and last fields are not read). ``"npy"``: an integer array ``[Q, d]``. Default:
        from the suffix, ``.json`` IGLUE, ``.npy`` npy, ``.trec``, ``.run`` and
        ``.txt`` TREC.
    query_ids, gallery_ids : sequence, optional
        The identifiers of the queries and of the gallery items, in index order
        (compared as strings). A TREC run needs them (or ``benchmark``): the lists come
        back in the order of ``query_ids``, as indices into ``gallery_ids``. For the
        index formats they state the shape expected: ``len(query_ids)`` queries,
        indices below ``len(gallery_ids)``.
    benchmark : Benchmark, optional
        Instead of ids, for text-to-image lists of a
        :class:`~ccr_metrics.Benchmark` (any object with ``image_ids`` and
        ``captions``): the gallery ids are its ``image_ids`` and the query ids the
        caption numbers ``"0"``, ``"1"``, ... of ``language`` in its order.
    language : str, optional
        The language of the lists; needed with ``benchmark``.

    Returns
    -------
    lists : numpy.ndarray, shape [Q, d], int64
        Row ``i``: the gallery indices of query ``i``'s list, best first.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the format is unknown or cannot be told from the suffix, the ids are
        missing (TREC), repeated or given both ways, or the file is malformed; the
        message names the file and the line (TREC) or query: a line without six
        fields, a rank or score that is not a number, an unknown query or item id,
        an item listed twice for a query, ranks not ``1, 2, ...`` in file order or
        with a score above the previous rank's, a query with no line or a shorter
        list than the others, a JSON entry that is not an integer index, rows of
        different lengths, a pickled or non-integer ``.npy``.

    Notes
    -----
    Every query must have a list of the same depth ``d``: a shorter one would make
    recall at its depth and beyond undefined for that query, so it is refused rather
    than padded. Scores may tie; trec_eval orders tied items by docid, this reader by
    the rank field, which must then agree with the scores.

    Examples
    --------
    >>> import json, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with open(f"{tmp.name}/test_en_0_result.json", "w") as f:
    ...     json.dump([[0, 2], [2, 1], [0, 1]], f)
    >>> load_ranked_lists(f"{tmp.name}/test_en_0_result.json")
    array([[0, 2],
           [2, 1],
           [0, 1]])
    >>> with open(f"{tmp.name}/en.trec", "w") as f:
    ...     _ = f.write("q1 Q0 cat 1 0.9 run\nq1 Q0 dog 2 0.5 run\n"
    ...                 "q0 Q0 dog 1 0.7 run\nq0 Q0 cow 2 0.1 run\n")
    >>> load_ranked_lists(f"{tmp.name}/en.trec", query_ids=["q0", "q1"],
    ...                   gallery_ids=["cat", "dog", "cow"])
    array([[1, 2],
           [0, 1]])
    >>> tmp.cleanup()
    """
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{file}: no such file")
    if not file.is_file():
        raise InputError(f"{file}: not a file", argument=str(file))
    if format is None:
        if file.suffix.lower() not in _SUFFIX_FORMATS:
            raise InputError(
                f"{file}: cannot tell the format from the suffix "
                f"{file.suffix or '(none)'!r}; pass format= one of {', '.join(LIST_FORMATS)}",
                argument="format",
            )
        format = _SUFFIX_FORMATS[file.suffix.lower()]
    check_choice("format", format, LIST_FORMATS)
    queries, gallery = _ids(query_ids, gallery_ids, benchmark, language)
    if format == "trec":
        if queries is None or gallery is None:
            raise InputError(
                f"{file}: a TREC run names queries and items by id; pass query_ids= and "
                "gallery_ids=, or benchmark= and language=",
                argument="query_ids",
            )
        return _read_trec(file, queries, gallery)
    lists = _read_iglue(file) if format == "iglue" else checked_lists(read_npy(file), str(file))
    if queries is not None and len(queries) != lists.shape[0]:
        raise InputError(
            f"{file}: {lists.shape[0]} queries, expected {len(queries)} (one per query id)",
            argument=str(file),
        )
    if gallery is not None:
        check_in(
            lists,
            np.ones(len(gallery), dtype=bool),
            str(file),
            f"a gallery index (< {len(gallery)})",
        )
    return lists


def _ids(
    query_ids: Sequence[Any] | None,
    gallery_ids: Sequence[Any] | None,
    benchmark: Any,
    language: str | None,
) -> tuple[dict[str, int] | None, dict[str, int] | None]:
    """``{id: index}`` of the queries and of the gallery items, or None where not given."""
    if benchmark is not None:
        if query_ids is not None or gallery_ids is not None:
            raise InputError(
                "give the ids either as query_ids= and gallery_ids= or through benchmark=, "
                "not both",
                argument="benchmark",
            )
        captions = getattr(benchmark, "captions", None)
        if language is None or not isinstance(captions, dict) or language not in captions:
            known = ", ".join(captions) if isinstance(captions, dict) else "none"
            raise InputError(
                f"benchmark= needs language= one of its languages ({known}), got {language!r}",
                argument="language",
            )
        query_ids = [str(i) for i in range(len(captions[language]))]
        gallery_ids = list(benchmark.image_ids)
    return _index(query_ids, "query_ids"), _index(gallery_ids, "gallery_ids")


def _index(ids: Sequence[Any] | None, name: str) -> dict[str, int] | None:
    if ids is None:
        return None
    if isinstance(ids, (str, bytes)):
        raise InputError(f"{name} must be a sequence of ids, got a string", argument=name)
    index: dict[str, int] = {}
    for i, value in enumerate(ids):
        key = str(value)
        if key in index:
            raise InputError(
                f"{name} repeats {key!r} (positions {index[key]} and {i})",
                argument=name,
                position=(i,),
            )
        index[key] = i
    if not index:
        raise InputError(f"{name} is empty", argument=name)
    return index


def _read_iglue(file: Path) -> IntArray:
    try:
        document = json.loads(file.read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except ValueError as exc:  # undecodable, malformed, or NaN / Infinity
        raise InputError(f"{file}: not a JSON file ({exc})", argument=str(file)) from None
    if not isinstance(document, list) or not document:
        raise InputError(
            f"{file}: expected a non-empty JSON list with one list of gallery indices per "
            f"query, got {type(document).__name__}",
            argument=str(file),
        )
    for i, row in enumerate(document):
        if not isinstance(row, list):
            raise InputError(
                f"{file}: query {i} is {type(row).__name__}, expected a list of gallery indices",
                argument=str(file),
                position=(i,),
            )
        for p, value in enumerate(row):
            # json gives exactly int for an integer (bool for true and false).
            if type(value) is not int or not -(2**63) <= value < 2**63:
                raise InputError(
                    f"{file}: query {i}, position {p} is {value!r}, not an integer index",
                    argument=str(file),
                    position=(i, p),
                )
    return checked_lists(document, str(file))


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not an index")


def _read_trec(file: Path, queries: dict[str, int], gallery: dict[str, int]) -> IntArray:
    rows: list[list[int]] = [[] for _ in queries]
    scores: list[float | None] = [None] * len(queries)
    seen: list[dict[int, int]] = [{} for _ in queries]
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{file}: not a text file", argument=str(file)) from None
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{file}, line {number}"
        if len(fields) != 6:
            raise InputError(
                f"{where}: {len(fields)} fields, expected 6 (qid Q0 docid rank score tag)",
                argument=str(file),
            )
        qid, _, docid, rank_text, score_text, _ = fields
        if qid not in queries:
            raise InputError(f"{where}: unknown query id {qid!r}", argument=str(file))
        if docid not in gallery:
            raise InputError(f"{where}: unknown item id {docid!r}", argument=str(file))
        query, item = queries[qid], gallery[docid]
        rank, score = (
            _number(rank_text, int, where, "rank"),
            _number(score_text, float, where, "score"),
        )
        if rank != len(rows[query]) + 1:
            raise InputError(
                f"{where}: query {qid!r} has rank {rank} after {len(rows[query])} item(s); "
                f"ranks must run 1, 2, ... in file order",
                argument=str(file),
            )
        if item in seen[query]:
            raise InputError(
                f"{where}: query {qid!r} lists {docid!r} again (first at rank {seen[query][item]})",
                argument=str(file),
            )
        previous = scores[query]
        if previous is not None and score > previous:
            raise InputError(
                f"{where}: query {qid!r} scores rank {rank} ({score:g}) above rank "
                f"{rank - 1} ({previous:g}); ranks out of order",
                argument=str(file),
            )
        rows[query].append(item)
        seen[query][item] = rank
        scores[query] = score
    depths = np.array([len(row) for row in rows])
    ids = list(queries)
    if depths.min() == 0:
        missing = ids[int(np.argmin(depths))]
        raise InputError(f"{file}: query {missing!r} has no line", argument=str(file))
    if depths.min() != depths.max():
        short = int(np.argmin(depths))
        raise InputError(
            f"{file}: query {ids[short]!r} lists {depths[short]} items, query "
            f"{ids[int(np.argmax(depths))]!r} {depths.max()}; every query needs a list of "
            "the same depth",
            argument=str(file),
        )
    return np.asarray(rows, dtype=np.int64)


def _number(text: str, kind: type[int] | type[float], where: str, field: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or (kind is int and value < 1) or (kind is float and not math.isfinite(value)):
        wanted = "a positive integer" if kind is int else "a finite number"
        raise InputError(f"{where}: {field} {text!r} is not {wanted}", argument=where.split(",")[0])
    return value
