"""Read embeddings, score matrices and rank arrays from files, without unpickling.

Files users pass in are untrusted, so nothing here runs code stored in a file: ``.npz``
and ``.npy`` are read with ``allow_pickle=False``, ``.pt`` with
``torch.load(weights_only=True)`` (tensors and plain containers only), and
``.safetensors`` cannot hold code at all. A file that asks for more is refused with a
ValueError before any of it runs.

Only names and file structure are checked here (each array against its header, so that
no array is ever read from another's bytes); shapes, dtypes and values are checked
by :func:`~ccr_metrics.evaluate`, :func:`~ccr_metrics.evaluate_scores` and
:func:`~ccr_metrics.mean_rank_variance`, which name the offending array.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ._containers import READERS, LoadedArray, read_npy, read_npy_folder
from .core._validation import InputError

__all__ = [
    "ARRAY_SUFFIXES",
    "RANK_SUFFIXES",
    "RELEASED_DIRECTIONS",
    "SECOND_STAGE_PREFIXES",
    "Embeddings",
    "Reranking",
    "Scores",
    "load_arrays",
    "load_embeddings",
    "load_rank_matrix",
    "load_ranks",
    "load_released_ranks",
    "load_reranking",
    "load_scores",
]

PathLike = str | os.PathLike[str]

#: File types :func:`load_arrays` reads.
ARRAY_SUFFIXES = (".npz", ".safetensors", ".pt")
#: File types :func:`load_ranks` reads.
RANK_SUFFIXES = (".npy", ".txt", ".csv")
#: The file tag of each direction in the released code's ``ranks/`` folder:
#: ``tr`` (text retrieval) is image-to-text, ``ir`` (image retrieval) text-to-image.
RELEASED_DIRECTIONS: dict[str, str] = {"i2t": "tr", "t2i": "ir"}
# The languages load_released_ranks puts first, in the released code's order for
# xFlickr&CO; any other language follows them, alphabetically.
_RELEASED_ORDER = ("en", "de", "ja", "zh")
# <language>_<model>_<tr|ir>.npy; the language is the text before the first underscore.
_RELEASED_NAME = re.compile(r"([^_]+)_(.+)_(tr|ir)\.npy")

_EMBEDDING_LAYOUT = "'image' [N, D], 'text.<lang>' [M, D] and optional 'text_to_image.<lang>' [M]"
_SCORE_LAYOUT = (
    "'i2t.<lang>' [N, M] and/or 't2i.<lang>' [M, N], and optional 'text_to_image.<lang>' [M]"
)


class Embeddings(NamedTuple):
    """What an embeddings file holds, ready for :func:`~ccr_metrics.evaluate`."""

    image: LoadedArray
    """Image embeddings ``[N, D]`` (key ``image``)."""
    texts: dict[str, LoadedArray]
    """Text embeddings ``[M_l, D]`` per language (keys ``text.<lang>``), in file order."""
    text_to_image: dict[str, LoadedArray]
    """Image index ``[M_l]`` of each text (keys ``text_to_image.<lang>``); may be empty."""


class Scores(NamedTuple):
    """What a score file holds, ready for :func:`~ccr_metrics.evaluate_scores`."""

    i2t: dict[str, LoadedArray]
    """Image-to-text scores ``[N, M_l]`` per language (keys ``i2t.<lang>``)."""
    t2i: dict[str, LoadedArray]
    """Text-to-image scores ``[M_l, N]`` per language (keys ``t2i.<lang>``)."""
    text_to_image: dict[str, LoadedArray]
    """Image index ``[M_l]`` of each text (keys ``text_to_image.<lang>``); may be empty."""


def load_arrays(path: PathLike) -> dict[str, LoadedArray]:
    """Read every named array of a ``.npz``, ``.safetensors`` or ``.pt`` file, or a folder.

    Arrays that lie uncompressed in the file are memory-mapped, not read: those of a
    ``.npz`` written by ``np.savez`` (not ``np.savez_compressed``), of a
    ``.safetensors`` file, of a ``.pt`` file in torch's zip format (the default since
    torch 1.6) and the ``.npy`` files of a folder. Their pages are read when used and
    the operating system can drop them again, so a score matrix larger than the
    memory left can still be evaluated block by block.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Its extension picks the reader; a ``.pt`` file must hold a dict of
        tensors with string keys (what ``torch.save({...}, path)`` writes). Or a
        folder holding one ``<key>.npy`` per array (``i2t.en.npy``,
        ``text_to_image.en.npy``, ...) and no other file.

    Returns
    -------
    arrays : dict of str to numpy.ndarray or torch.Tensor
        In file order (sorted by key for ``.safetensors`` and folders, which keep no
        order); numpy arrays from ``.npz``, ``.safetensors`` and folders (torch
        tensors for bfloat16), CPU tensors from ``.pt``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the extension is not one of :data:`ARRAY_SUFFIXES`, the file is corrupt or
        empty, a ``.pt`` file is not a dict of tensors, a folder holds a file that is
        not ``.npy``, or the file holds pickled Python objects (refused unread:
        nothing in it runs). Every array is checked against its header before it is
        used, and a file whose headers say other than it holds is refused naming the
        key: a ``.npy`` header (of a member, a folder's file) claiming more or fewer
        values than follow it, a member running into the next one, a key stored twice,
        a ``.pt`` storage record shorter or longer than its tensor needs, safetensors
        tensors sharing bytes, a name twice, or a header nested deeper than the format.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = f"{tmp.name}/embeddings.npz"
    >>> np.savez(path, image=np.eye(2), **{"text.en": np.eye(2)})
    >>> {key: a.shape for key, a in load_arrays(path).items()}
    {'image': (2, 2), 'text.en': (2, 2)}
    >>> tmp.cleanup()
    """
    if Path(path).is_dir():
        file = Path(path)
        arrays = read_npy_folder(file)
    else:
        file = _existing_file(path, ARRAY_SUFFIXES)
        arrays = READERS[file.suffix.lower()](file)
    if not arrays:
        raise InputError(f"{file}: holds no arrays", argument=str(file))
    return arrays


def load_embeddings(path: PathLike) -> Embeddings:
    """Read an embeddings file: keys ``image``, ``text.<lang>``, ``text_to_image.<lang>``.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npz``, ``.safetensors`` or ``.pt`` file with key ``image`` ``[N, D]``, one
        ``text.<lang>`` ``[M_l, D]`` per language and, for languages where text ``i``
        does not simply describe image ``i``, ``text_to_image.<lang>`` ``[M_l]`` (int).

    Returns
    -------
    Embeddings
        ``(image, texts, text_to_image)``, to pass to :func:`~ccr_metrics.evaluate`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        As :func:`load_arrays`; if ``image`` or every ``text.<lang>`` is missing, a key
        is not one of the above, or ``text_to_image.<lang>`` names a language without
        ``text.<lang>``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = f"{tmp.name}/embeddings.npz"
    >>> np.savez(path, image=np.eye(3), **{"text.en": np.eye(3), "text.de": np.eye(3)[:2],
    ...                                     "text_to_image.de": np.array([0, 2])})
    >>> image, texts, text_to_image = load_embeddings(path)
    >>> image.shape, list(texts), text_to_image["de"].tolist()
    ((3, 3), ['en', 'de'], [0, 2])
    >>> tmp.cleanup()
    """
    return _embeddings_from(load_arrays(path), path)


def _embeddings_from(arrays: Mapping[str, LoadedArray], path: PathLike) -> Embeddings:
    groups = _group_keys(arrays, path, ("text", "text_to_image"), "image")
    if "image" not in arrays:
        raise InputError(
            f"{path}: no 'image' key (the image embeddings [N, D]); keys: {list(arrays)}",
            argument=str(path),
        )
    texts = groups["text"]
    if not texts:
        raise InputError(
            f"{path}: no 'text.<lang>' key (text embeddings [M, D] per language); "
            f"keys: {list(arrays)}",
            argument=str(path),
        )
    _check_mapped_languages(path, groups["text_to_image"], texts, "a 'text.<lang>' key")
    return Embeddings(arrays["image"], texts, groups["text_to_image"])


def load_scores(path: PathLike) -> Scores:
    """Read a score file: keys ``i2t.<lang>``, ``t2i.<lang>``, ``text_to_image.<lang>``.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npz``, ``.safetensors`` or ``.pt`` file with ``i2t.<lang>`` ``[N, M_l]``
        (row: image, column: text) and/or ``t2i.<lang>`` ``[M_l, N]`` (row: text, column:
        image) per language, and optionally ``text_to_image.<lang>`` ``[M_l]`` (int).

    Returns
    -------
    Scores
        ``(i2t, t2i, text_to_image)``, to pass to :func:`~ccr_metrics.evaluate_scores`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        As :func:`load_arrays`; if no ``i2t.<lang>`` or ``t2i.<lang>`` key exists, a key
        is not one of the above, or ``text_to_image.<lang>`` names a language without
        scores.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = f"{tmp.name}/scores.npz"
    >>> s = np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> np.savez(path, **{"i2t.en": s, "t2i.en": s.T})
    >>> i2t, t2i, text_to_image = load_scores(path)
    >>> list(i2t), list(t2i), text_to_image
    (['en'], ['en'], {})
    >>> tmp.cleanup()
    """
    return _scores_from(load_arrays(path), path)


def _scores_from(arrays: Mapping[str, LoadedArray], path: PathLike) -> Scores:
    groups = _group_keys(arrays, path, ("i2t", "t2i", "text_to_image"), None)
    scored = {**groups["i2t"], **groups["t2i"]}
    if not scored:
        raise InputError(
            f"{path}: no 'i2t.<lang>' or 't2i.<lang>' key (score matrices per language); "
            f"keys: {list(arrays)}",
            argument=str(path),
        )
    _check_mapped_languages(path, groups["text_to_image"], scored, "scores")
    return Scores(groups["i2t"], groups["t2i"], groups["text_to_image"])


class Reranking(NamedTuple):
    """What a file of a two-stage (re-ranking) model holds."""

    first_stage: Embeddings | Scores
    """The first stage: embeddings (key ``image`` present) or coarse score matrices."""
    candidates: dict[str, dict[str, LoadedArray]]
    """``{direction: {lang: [Q, k]}}`` (keys ``<direction>_candidates.<lang>``)."""
    fine: dict[str, dict[str, LoadedArray]]
    """``{direction: {lang: [Q, k]}}`` (keys ``<direction>_fine.<lang>``)."""


#: The key prefixes of a second stage: candidates and their scores per direction.
SECOND_STAGE_PREFIXES = ("i2t_candidates", "i2t_fine", "t2i_candidates", "t2i_fine")


def load_reranking(path: PathLike) -> Reranking:
    """Read a two-stage model's file: a first stage plus candidates and their fine scores.

    Parameters
    ----------
    path : str or os.PathLike
        A file :func:`load_arrays` reads holding the first stage, either as embeddings
        (the keys of :func:`load_embeddings`) or as coarse score matrices (the keys of
        :func:`load_scores`), and, per direction and language re-ranked,
        ``i2t_candidates.<lang>`` ``[N, k]`` (int: each image's candidate texts) with
        ``i2t_fine.<lang>`` ``[N, k]`` (their second-stage scores), and/or
        ``t2i_candidates.<lang>`` ``[M_l, k]`` (candidate images) with
        ``t2i_fine.<lang>`` ``[M_l, k]``.

    Returns
    -------
    Reranking
        ``(first_stage, candidates, fine)``; pass ``candidates`` and ``fine`` to
        :func:`~ccr_metrics.evaluate` (embeddings) or
        :func:`~ccr_metrics.evaluate_scores` (score matrices).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        As :func:`load_embeddings` or :func:`load_scores` for the first stage (a file
        without second-stage keys must be a score file, read as :func:`load_scores`
        reads it, with no candidates), or if a ``<direction>_candidates.<lang>`` key
        comes without its ``<direction>_fine.<lang>`` (or the other way round).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = f"{tmp.name}/reranked.npz"
    >>> np.savez(path, **{"i2t.en": np.eye(3), "i2t_candidates.en": np.array([[0], [1], [2]]),
    ...                   "i2t_fine.en": np.array([[5.0], [4.0], [3.0]])})
    >>> first, candidates, fine = load_reranking(path)
    >>> list(first.i2t), candidates["i2t"]["en"].shape, list(fine)
    (['en'], (3, 1), ['i2t'])
    >>> tmp.cleanup()
    """
    arrays = load_arrays(path)
    stage: dict[str, dict[str, LoadedArray]] = {prefix: {} for prefix in SECOND_STAGE_PREFIXES}
    rest = {}
    for key, value in arrays.items():
        prefix, _, lang = key.partition(".")
        if prefix in stage and lang:
            stage[prefix][lang] = value
        else:
            rest[key] = value
    if not any(stage.values()):  # a one-stage model's score file
        return Reranking(_scores_from(rest, path), {}, {})
    candidates: dict[str, dict[str, LoadedArray]] = {}
    fine: dict[str, dict[str, LoadedArray]] = {}
    for direction in ("i2t", "t2i"):
        found, scored = stage[f"{direction}_candidates"], stage[f"{direction}_fine"]
        unpaired = sorted(set(found) ^ set(scored))
        if unpaired:
            lang = unpaired[0]
            have, lack = ("candidates", "fine") if lang in found else ("fine", "candidates")
            raise InputError(
                f"{path}: '{direction}_{have}.{lang}' has no '{direction}_{lack}.{lang}'; "
                "candidates and their fine scores go together",
                argument=str(path),
            )
        if found:
            candidates[direction] = found
            fine[direction] = {lang: scored[lang] for lang in found}
    first: Embeddings | Scores = (
        _embeddings_from(rest, path) if "image" in rest else _scores_from(rest, path)
    )
    return Reranking(first, candidates, fine)


def load_ranks(path: PathLike) -> npt.NDArray[np.float64]:
    """Read one rank per instance from a ``.npy`` array or a text file.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npy`` file holding a 1-D numeric array, or a ``.txt`` / ``.csv`` file with
        one number per line (blank lines and lines starting with ``#`` are skipped).
        0-based and 1-based ranks alike.

    Returns
    -------
    ranks : numpy.ndarray, shape [N], float64

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the extension is not one of :data:`RANK_SUFFIXES`, the file is unreadable
        or holds pickled objects, a line is not one number, or the ranks are not a
        non-empty 1-D array of finite numbers.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = f"{tmp.name}/ranks_en.txt"
    >>> np.savetxt(path, [0, 4, 2], fmt="%d")
    >>> load_ranks(path)
    array([0., 4., 2.])
    >>> tmp.cleanup()
    """
    file = _existing_file(path, RANK_SUFFIXES)
    ranks = read_npy(file) if file.suffix.lower() == ".npy" else _read_lines(file)
    if ranks.dtype.kind not in "iuf":
        raise InputError(
            f"{file}: ranks must be numbers, got dtype {ranks.dtype}", argument=str(file)
        )
    if ranks.ndim != 1 or ranks.size == 0:
        raise InputError(
            f"{file}: ranks must be a non-empty 1-D array [N], got shape {list(ranks.shape)}",
            argument=str(file),
        )
    out = ranks.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise InputError(
            f"{file}: rank {bad[0]} is {out[bad[0]]}; ranks must be finite", argument=str(file)
        )
    return out


def load_rank_matrix(files: Mapping[str, PathLike]) -> npt.NDArray[np.float64]:
    """Read one rank file per language into the ``[N, K]`` matrix MRV takes.

    Parameters
    ----------
    files : mapping of str to path
        ``{language: rank file}``, each read with :func:`load_ranks`; every file must
        rank the same ``N`` instances in the same order.

    Returns
    -------
    ranks : numpy.ndarray, shape [N, K], float64
        Column ``k`` is the ``k``-th language of ``files``.

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    ValueError
        As :func:`load_ranks`; if ``files`` is empty or the files differ in length.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> np.save(f"{tmp.name}/en.npy", np.array([0, 1, 2]))
    >>> np.save(f"{tmp.name}/de.npy", np.array([0, 3, 2]))
    >>> load_rank_matrix({"en": f"{tmp.name}/en.npy", "de": f"{tmp.name}/de.npy"})
    array([[0., 0.],
           [1., 3.],
           [2., 2.]])
    >>> tmp.cleanup()
    """
    if not files:
        raise InputError("files must map at least one language to a rank file", argument="files")
    columns = {lang: load_ranks(path) for lang, path in files.items()}
    first, n = next((lang, len(r)) for lang, r in columns.items())
    for lang, r in columns.items():
        if len(r) != n:
            raise InputError(
                f"{files[lang]} ({lang}) has {len(r)} ranks but {files[first]} ({first}) "
                f"has {n}; every language must rank the same instances",
                argument=str(files[lang]),
            )
    return np.stack(list(columns.values()), axis=1)


def load_released_ranks(
    directory: PathLike,
    model: str,
    *,
    languages: Sequence[str] | None = None,
) -> dict[str, dict[str, npt.NDArray[np.float64]]]:
    """Read the rank files the authors' released code saves for one model.

    The released evaluation (``itm_eval`` in ``xFlickrCO.py``) saves, per language,
    model and direction, ``ranks/{language}_{model}_tr.npy`` (image-to-text: the
    0-based position of each image's best caption) and ``ranks/{language}_{model}_ir.npy``
    (text-to-image: the 0-based position of each caption's image), as float arrays.

    Parameters
    ----------
    directory : str or os.PathLike
        The ``ranks/`` folder. Files of other models and other files are ignored.
    model : str
        The model name in the file names (the released code's ``--model_cap``). It may
        contain underscores: a file is this model's when its name is
        ``<language>_<model>_tr.npy`` or ``<language>_<model>_ir.npy`` exactly, where
        the language is the text before the first underscore (so ``en_ft_x_tr.npy`` is
        model ``ft_x``'s, not model ``x``'s in language ``en_ft``).
    languages : sequence of str, optional
        The languages to read, in this order. Default: all found, ``en``, ``de``,
        ``ja``, ``zh`` first (the released code's order) and then the others
        alphabetically. A language may have files in one direction only.

    Returns
    -------
    ranks : dict of str to dict of str to numpy.ndarray
        ``{direction: {language: ranks [N], float64}}``: direction ``"i2t"`` from the
        ``_tr`` files and ``"t2i"`` from the ``_ir`` files (see
        :data:`RELEASED_DIRECTIONS`), in that order; a direction without any file of
        the model is left out. Every language of a direction has the same ``N``.

    Raises
    ------
    FileNotFoundError
        If ``directory`` does not exist.
    ValueError
        If ``directory`` is not a directory, holds no file of ``model`` (the message
        lists the models it does hold), a language of ``languages`` has no file, the
        languages of a direction have different numbers of instances, or a file is as
        :func:`load_ranks` refuses (pickled, not 1-D, not finite) or holds a negative
        rank.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> for lang, tr, ir in [("de", [0, 2, 1], [1, 0, 0]), ("en", [0, 1, 1], [0, 0, 3])]:
    ...     np.save(f"{tmp.name}/{lang}_xvlm_base_tr.npy", np.array(tr, dtype=float))
    ...     np.save(f"{tmp.name}/{lang}_xvlm_base_ir.npy", np.array(ir, dtype=float))
    >>> ranks = load_released_ranks(tmp.name, "xvlm_base")
    >>> {direction: list(by_language) for direction, by_language in ranks.items()}
    {'i2t': ['en', 'de'], 't2i': ['en', 'de']}
    >>> ranks["i2t"]["de"]
    array([0., 2., 1.])
    >>> try:  # "xvlm" is not "xvlm_base": the error lists the models the folder holds
    ...     load_released_ranks(tmp.name, "xvlm")
    ... except ValueError as exc:
    ...     print(str(exc).rpartition("; ")[2])
    models present: xvlm_base
    >>> tmp.cleanup()
    """
    folder = Path(directory)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such directory")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a directory", argument=str(folder))
    if not model:
        raise InputError("model must be a non-empty name", argument="model")
    found: dict[str, dict[str, Path]] = {direction: {} for direction in RELEASED_DIRECTIONS}
    models: set[str] = set()
    tags = {tag: direction for direction, tag in RELEASED_DIRECTIONS.items()}
    for file in folder.iterdir():
        match = _RELEASED_NAME.fullmatch(file.name)
        if match is None or not file.is_file():
            continue
        language, name, tag = match.groups()
        models.add(name)
        if name == model:
            found[tags[tag]][language] = file
    present = {lang for files in found.values() for lang in files}
    if not present:
        others = ", ".join(sorted(models)) or "none (no <language>_<model>_{tr,ir}.npy file)"
        raise InputError(
            f"{folder}: no rank file of model {model!r} (<language>_{model}_tr.npy or "
            f"<language>_{model}_ir.npy); models present: {others}",
            argument=str(folder),
        )
    if languages is None:
        order = [lang for lang in _RELEASED_ORDER if lang in present]
        order += sorted(present - set(_RELEASED_ORDER))
    else:
        order = list(languages)
        repeated = sorted({lang for lang in order if order.count(lang) > 1})
        if repeated:
            raise InputError(f"languages {repeated} are given more than once", argument="languages")
        absent = [lang for lang in order if lang not in present]
        if absent:
            raise InputError(
                f"{folder}: no rank file of model {model!r} for language(s) {absent}; "
                f"languages present: {', '.join(sorted(present))}",
                argument=str(folder),
            )
    out: dict[str, dict[str, npt.NDArray[np.float64]]] = {}
    for direction, files in found.items():
        chosen = [lang for lang in order if lang in files]
        if not chosen:
            continue
        ranks = {lang: _released_file(files[lang]) for lang in chosen}
        sizes = {lang: len(r) for lang, r in ranks.items()}
        if len(set(sizes.values())) > 1:
            counts = ", ".join(f"{lang} {n}" for lang, n in sizes.items())
            raise InputError(
                f"{folder}: the {RELEASED_DIRECTIONS[direction]} ({direction}) files of model "
                f"{model!r} rank different numbers of instances ({counts}); every language "
                "must rank the same instances",
                argument=str(folder),
            )
        out[direction] = ranks
    return out


def _released_file(file: Path) -> npt.NDArray[np.float64]:
    ranks = load_ranks(file)
    negative = np.flatnonzero(ranks < 0)
    if negative.size:
        raise InputError(
            f"{file}: rank {negative[0]} is {ranks[negative[0]]}; the released ranks are "
            "0-based positions, never negative",
            argument=str(file),
        )
    return ranks


def _existing_file(path: PathLike, suffixes: tuple[str, ...]) -> Path:
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"{file}: no such file")
    if not file.is_file():
        raise InputError(f"{file}: not a file", argument=str(file))
    if file.suffix.lower() not in suffixes:
        raise InputError(
            f"{file}: unknown file type {file.suffix or '(no extension)'!r}; "
            f"expected one of {', '.join(suffixes)}",
            argument=str(file),
        )
    return file


def _read_lines(file: Path) -> npt.NDArray[np.float64]:
    try:
        lines = file.read_text().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{file}: not a text file", argument=str(file)) from None
    values = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            values.append(float(text))
        except ValueError:
            raise InputError(
                f"{file}: line {number} is {text!r}, not one number (one rank per line)",
                argument=str(file),
            ) from None
    return np.asarray(values, dtype=np.float64)


def _group_keys(
    arrays: Mapping[str, LoadedArray],
    path: PathLike,
    prefixes: tuple[str, ...],
    single: str | None,
) -> dict[str, dict[str, LoadedArray]]:
    """Split ``<prefix>.<lang>`` keys by prefix; refuse any other key but ``single``."""
    groups: dict[str, dict[str, LoadedArray]] = {prefix: {} for prefix in prefixes}
    unexpected = []
    for key, value in arrays.items():
        prefix, _, lang = key.partition(".")
        if key == single:
            continue
        if prefix in groups and lang:
            groups[prefix][lang] = value
        else:
            unexpected.append(key)
    if unexpected:
        embeddings = single == "image"
        layout = _EMBEDDING_LAYOUT if embeddings else _SCORE_LAYOUT
        # The likeliest mix-up: a score file read as embeddings, or the other way round.
        other = ("i2t.", "t2i.") if embeddings else ("image", "text.")
        hint = ""
        if any(key.startswith(other) for key in unexpected):
            hint = (
                " (scores: read them with load_scores, or `ccr-metrics scores`)"
                if embeddings
                else " (embeddings: read them with load_embeddings, or `ccr-metrics evaluate`)"
            )
        raise InputError(
            f"{path}: unexpected key(s) {unexpected}{hint}; expected {layout}", argument=str(path)
        )
    return groups


def _check_mapped_languages(
    path: PathLike,
    mapping: Mapping[str, LoadedArray],
    present: Mapping[str, LoadedArray],
    what: str,
) -> None:
    orphans = [lang for lang in mapping if lang not in present]
    if orphans:
        keys = [f"text_to_image.{lang}" for lang in orphans]
        raise InputError(
            f"{path}: {keys} given for language(s) {orphans} without {what}", argument=str(path)
        )
