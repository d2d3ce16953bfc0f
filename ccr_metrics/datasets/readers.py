"""Readers of the field's retrieval benchmarks, from the files as their authors distribute them.

One reader per layout; :func:`load_benchmark` picks it by name. Each checks what it
reads and refuses, naming the file and line, what it cannot read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core._validation import InputError, check_choice
from ._files import field, json_document, json_lines, refuse, require_dir, string_list, text_lines
from .benchmark import Benchmark, IntArray

__all__ = ["BENCHMARKS", "load_benchmark"]

#: The benchmarks :func:`load_benchmark` reads.
BENCHMARKS = ("xflickrco", "wit", "xtd10", "multi30k", "multi30k-task2", "xm3600", "karpathy")

# XTD10's folders, in the order a language found in two of them is taken from.
_XTD10_FOLDERS = ("XTD10", "MIC", "STAIR")
# File codes that are not the language's ISO 639-1 code (STAIR's Japanese is "jp").
_XTD10_CODES = {"jp": "ja"}
_TASK2_CAPTIONS = 5

PathLike = str | Path
Captions = dict[str, list[str]]
Owners = dict[str, list[int]]


def load_benchmark(
    name: str,
    root: PathLike,
    *,
    languages: Sequence[str] | None = None,
    split: str = "test",
) -> Benchmark:
    r"""Read a retrieval benchmark's annotations, as its authors distribute them.

    Parameters
    ----------
    name : {"xflickrco", "wit", "xtd10", "multi30k", "multi30k-task2", "xm3600", "karpathy"}
        The benchmark (the layouts are in Notes).
    root : str or os.PathLike
        Its folder as distributed; for ``"karpathy"`` the folder with one
        ``dataset_*.json`` file, or that file.
    languages : sequence of str, optional
        The languages to read, in this order. Default: every language found, sorted by
        code.
    split : str, default "test"
        The split. Only ``"test"`` is distributed for all but ``"karpathy"``, whose
        file holds ``"train"``, ``"val"``, ``"test"`` and ``"restval"``.

    Returns
    -------
    Benchmark
        The images, and every language's captions with the index of their image.

    Raises
    ------
    FileNotFoundError
        If ``root`` or a file the layout needs does not exist.
    ValueError
        Naming the file and 1-based line (in Karpathy's one-document JSON, the path of
        the field): a line that is not a JSON object, a missing field or one of the
        wrong type, text that is not UTF-8, a caption file with more or fewer lines
        than its image list, an image listed twice, and, in xFlickr&CO, a line whose
        image differs from the same line in the first language's file. Also an unknown
        ``name`` or ``split``, and a language the folder does not have (naming the
        folder and the languages it has).

    Notes
    -----
    The layouts, relative to ``root``; captions are kept as written (an empty caption
    included), line ends (``\n`` or ``\r\n``) removed:

    - ``"xflickrco"`` (IGLUE): ``annotations/{lang}/test.jsonl``, one image a line,
      ``{"sentences": [...], "id": ..., "img_path": ...}``. Ids are compared as
      strings (the files mix strings and integers); line ``j`` must be the same image
      in every language. Images in file order; ``image_paths`` the ``img_path``.
    - ``"wit"`` (IGLUE): ``annotations/test_{lang}.jsonl``, one caption a line. An
      image is its ``image_url`` (``image_idx`` names different images in places); the
      caption is ``caption_reference_description``. Each language has its own images:
      ``image_ids`` are the URLs in order of first appearance, reading the languages
      in order and each file top to bottom, and each language's gallery is its own.
      There are no ``image_paths``.
    - ``"xtd10"``: ``XTD10/test_image_names.txt`` lists the images; line ``i`` of
      ``{XTD10,MIC,STAIR}/test_1kcaptions_{lang}.txt`` describes image ``i``. The
      ``jp`` file (STAIR) is language ``"ja"``. A language in two folders is read
      from the first of XTD10, MIC, STAIR (MIC's ``en`` file is empty as distributed).
    - ``"multi30k"`` (task 1, test 2016): ``data/task1/raw/test_2016_flickr.{lang}.gz``
      line-aligned with ``data/task1/image_splits/test_2016_flickr.txt``.
    - ``"multi30k-task2"`` (test 2016): ``data/task2/raw/test_2016.{1..5}.{lang}.gz``,
      file ``i`` holding caption ``i`` of every image of
      ``data/task2/image_splits/test_2016_images.txt``; the captions are image by
      image (image 0's five, then image 1's, ...).
    - ``"xm3600"``: ``captions.jsonl``, one image a line: ``"image/key"`` and per
      language ``{"caption": [...]}`` (other ``image/...`` fields are ignored). Every
      caption is kept, image by image. ``image_paths`` are ``{key}.jpg``.
    - ``"karpathy"``: ``dataset_coco.json`` or ``dataset_flickr30k.json``:
      ``images[]`` with ``filename``, ``split``, ``sentences[].raw`` (and in COCO's,
      ``filepath``); English. Images of the split in file order, identified by
      ``filename``; ``image_paths`` are ``filepath/filename``.

    ``image_paths`` are names relative to wherever the images are kept: no format
    ships its images beside its annotations.

    Examples
    --------
    >>> import ccr_metrics as cm
    >>> b = cm.load_benchmark("xtd10", "tests/data/benchmarks/xtd10", languages=["en", "ja"])
    >>> print(b)
    xtd10 (test): 3 images, 2 languages; captions en 3, ja 3;
    one gallery shared by every language
    >>> b.image_ids[0], b.captions["ja"][0], b.text_to_image["ja"].tolist()
    ('COCO_train2014_000000000009.jpg', '皿に盛られた料理', [0, 1, 2])
    """
    chosen = check_choice("name", name, BENCHMARKS)
    wanted = _languages(languages)
    folder = Path(root)
    if chosen == "karpathy":
        return _karpathy(folder, wanted, split)
    if split != "test":
        raise InputError(f"{chosen} has one split, 'test'; got split={split!r}", argument="split")
    require_dir(folder, f"the {chosen} folder")
    return _READERS[chosen](folder, wanted)


def _languages(languages: Sequence[str] | None) -> list[str] | None:
    if languages is None:
        return None
    if isinstance(languages, str) or not isinstance(languages, Sequence):
        raise InputError(
            f"languages must be a list of language codes, got {languages!r}", argument="languages"
        )
    wanted = list(languages)
    if not wanted:
        raise InputError("languages is empty: name at least one language", argument="languages")
    for i, lang in enumerate(wanted):
        if not isinstance(lang, str) or not lang:
            raise InputError(
                f"languages[{i}] is {lang!r}, not a language code", argument="languages"
            )
        if lang in wanted[:i]:
            raise InputError(f"languages names {lang!r} twice", argument="languages")
    return wanted


def _select(
    found: dict[str, Any], wanted: list[str] | None, where: Path, pattern: str
) -> list[str]:
    """Return the languages to read: ``wanted``, checked against ``found``; default all."""
    if not found:
        raise InputError(f"{where}: no language found (no {pattern})", argument="root")
    for lang in wanted or []:
        if lang not in found:
            raise InputError(
                f"language {lang!r} not found in {where} ({pattern}); it has "
                f"{', '.join(sorted(found))}",
                argument="languages",
            )
    return sorted(found) if wanted is None else wanted


def _distinct(names: list[str], file: Path) -> None:
    """Refuse a name listed twice (line ``i + 1`` for ``names[i]``), naming both lines."""
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if name in seen:
            raise refuse(
                file, number, f"image {name!r} is listed twice (first on line {seen[name]})"
            )
        seen[name] = number


def _check_count(file: Path, n_lines: int, image_list: Path, n_images: int) -> None:
    """Refuse a caption file longer or shorter than its image list, naming the first odd line."""
    if n_lines < n_images:
        raise refuse(
            file, n_lines + 1, f"the file ends after {n_lines} lines; {image_list} lists {n_images}"
        )
    if n_lines > n_images:
        raise refuse(
            file,
            n_images + 1,
            f"caption {n_images + 1} has no image: {image_list} lists {n_images} images",
        )


def _arrays(owners: Owners) -> dict[str, IntArray]:
    return {lang: np.array(o, dtype=np.int64) for lang, o in owners.items()}


def _image_list(file: Path) -> list[str]:
    names = text_lines(file)
    if not names:
        raise refuse(file, None, "the file lists no image")
    _distinct(names, file)
    return names


def _some(captions: list[str], file: Path) -> None:
    if not captions:
        raise refuse(file, None, "the file has no caption")


def _aligned(name: str, list_file: Path, files: dict[str, Path], langs: list[str]) -> Benchmark:
    """Build a benchmark whose caption files are line-aligned with one image list."""
    names = _image_list(list_file)
    captions = {}
    for lang in langs:
        lines = text_lines(files[lang])
        _check_count(files[lang], len(lines), list_file, len(names))
        captions[lang] = lines
    owners = {lang: np.arange(len(names), dtype=np.int64) for lang in langs}
    return Benchmark(name, "test", names, captions, owners, image_paths=list(names))


def _xflickrco(root: Path, wanted: list[str] | None) -> Benchmark:
    folder = require_dir(root / "annotations", "xflickrco's annotations/")
    found = {
        d.name: d / "test.jsonl" for d in sorted(folder.iterdir()) if (d / "test.jsonl").is_file()
    }
    langs = _select(found, wanted, folder, "{lang}/test.jsonl")
    first: tuple[Path, list[str], list[str]] | None = None
    captions: Captions = {}
    owners: Owners = {}
    for lang in langs:
        file = found[lang]
        ids: list[str] = []
        paths: list[str] = []
        captions[lang], owners[lang] = [], []
        for line, record in json_lines(file):
            image = str(field(record, "id", (str, int), file, line))
            path = field(record, "img_path", str, file, line)
            sentences = string_list(
                field(record, "sentences", list, file, line), "sentences", file, line
            )
            if first is not None:
                _same_image(first, len(ids), image, path, file, line)
            ids.append(image)
            paths.append(path)
            captions[lang] += sentences
            owners[lang] += [len(ids) - 1] * len(sentences)
        _some(captions[lang], file)
        if first is None:
            _distinct(ids, file)
            first = (file, ids, paths)
        elif len(ids) < len(first[1]):
            raise refuse(
                file,
                len(ids) + 1,
                f"the file ends after {len(ids)} images; {first[0]} has {len(first[1])}",
            )
    assert first is not None  # at least one language was read
    return Benchmark("xflickrco", "test", first[1], captions, _arrays(owners), image_paths=first[2])


def _same_image(
    first: tuple[Path, list[str], list[str]], j: int, image: str, path: str, file: Path, line: int
) -> None:
    """Refuse line ``line`` unless it is image ``j`` of the first language's file."""
    first_file, ids, paths = first
    if j >= len(ids):
        raise refuse(file, line, f"image {image!r} is beyond the {len(ids)} images of {first_file}")
    if image != ids[j] or path != paths[j]:
        raise refuse(
            file,
            line,
            f"image {image!r} ({path}) differs from {first_file}, line {j + 1}: {ids[j]!r} "
            f"({paths[j]}); every language must list the same images in the same order",
        )


def _wit(root: Path, wanted: list[str] | None) -> Benchmark:
    folder = require_dir(root / "annotations", "wit's annotations/")
    found = {f.name[5:-6]: f for f in sorted(folder.glob("test_*.jsonl"))}
    langs = _select(found, wanted, folder, "test_{lang}.jsonl")
    index: dict[str, int] = {}
    captions: Captions = {}
    owners: Owners = {}
    for lang in langs:
        file = found[lang]
        captions[lang], owners[lang] = [], []
        for line, record in json_lines(file):
            url = field(record, "image_url", str, file, line)
            captions[lang].append(field(record, "caption_reference_description", str, file, line))
            owners[lang].append(index.setdefault(url, len(index)))
        _some(captions[lang], file)
    return Benchmark("wit", "test", list(index), captions, _arrays(owners))


def _xtd10(root: Path, wanted: list[str] | None) -> Benchmark:
    found: dict[str, Path] = {}
    for sub in _XTD10_FOLDERS:
        for file in sorted((root / sub).glob("test_1kcaptions_*.txt")):
            code = file.stem.removeprefix("test_1kcaptions_")
            found.setdefault(_XTD10_CODES.get(code, code), file)
    langs = _select(found, wanted, root, "{XTD10,MIC,STAIR}/test_1kcaptions_{lang}.txt")
    return _aligned("xtd10", root / "XTD10" / "test_image_names.txt", found, langs)


def _multi30k(root: Path, wanted: list[str] | None) -> Benchmark:
    raw = require_dir(root / "data" / "task1" / "raw", "multi30k's data/task1/raw/")
    found = {f.name.split(".")[1]: f for f in sorted(raw.glob("test_2016_flickr.*.gz"))}
    langs = _select(found, wanted, raw, "test_2016_flickr.{lang}.gz")
    images = root / "data" / "task1" / "image_splits" / "test_2016_flickr.txt"
    return _aligned("multi30k", images, found, langs)


def _multi30k_task2(root: Path, wanted: list[str] | None) -> Benchmark:
    raw = require_dir(root / "data" / "task2" / "raw", "multi30k's data/task2/raw/")
    found = {f.name.split(".")[2]: f for f in sorted(raw.glob("test_2016.*.*.gz"))}
    langs = _select(found, wanted, raw, "test_2016.{1..5}.{lang}.gz")
    list_file = root / "data" / "task2" / "image_splits" / "test_2016_images.txt"
    names = _image_list(list_file)
    captions: Captions = {}
    for lang in langs:
        columns = []
        for i in range(1, _TASK2_CAPTIONS + 1):
            file = raw / f"test_2016.{i}.{lang}.gz"
            lines = text_lines(file)
            _check_count(file, len(lines), list_file, len(names))
            columns.append(lines)
        captions[lang] = [caption for row in zip(*columns, strict=True) for caption in row]
    owners = {
        lang: np.repeat(np.arange(len(names), dtype=np.int64), _TASK2_CAPTIONS) for lang in langs
    }
    return Benchmark("multi30k-task2", "test", names, captions, owners, image_paths=list(names))


def _xm3600(root: Path, wanted: list[str] | None) -> Benchmark:
    file = root / "captions.jsonl"
    records = list(json_lines(file))
    keys = [field(record, "image/key", str, file, line) for line, record in records]
    _distinct(keys, file)
    found = {k: True for _, record in records for k in record if not k.startswith("image/")}
    langs = _select(found, wanted, file, 'per-language {"caption": [...]} fields')
    captions: Captions = {lang: [] for lang in langs}
    owners: Owners = {lang: [] for lang in langs}
    for j, (line, record) in enumerate(records):
        for lang in langs:
            if lang not in record:
                continue  # the image has no caption in this language
            entry = field(record, lang, dict, file, line)
            texts = string_list(
                field(entry, "caption", list, file, line, at=lang), f"{lang}.caption", file, line
            )
            captions[lang] += texts
            owners[lang] += [j] * len(texts)
    paths = [f"{key}.jpg" for key in keys]
    return Benchmark("xm3600", "test", keys, captions, _arrays(owners), image_paths=paths)


def _karpathy_file(root: Path) -> Path:
    if root.is_file():
        return root
    require_dir(root, "the karpathy folder or its dataset_*.json")
    files = sorted(root.glob("dataset_*.json"))
    if not files:
        raise FileNotFoundError(f"{root}: no dataset_*.json (dataset_coco.json, ...)")
    if len(files) > 1:
        raise InputError(
            f"{root} holds {', '.join(f.name for f in files)}: pass the file to read as root",
            argument="root",
        )
    return files[0]


def _karpathy(root: Path, wanted: list[str] | None, split: str) -> Benchmark:
    file = _karpathy_file(root)
    langs = _select({"en": True}, wanted, file, "Karpathy's splits are English")
    document = json_document(file)
    if not isinstance(document, dict):
        raise refuse(file, None, f"expected a JSON object, got {type(document).__name__}")
    images = field(document, "images", list, file, None)
    ids: dict[str, int] = {}
    paths: list[str] = []
    captions: list[str] = []
    owners: list[int] = []
    splits: dict[str, None] = {}
    for i, image in enumerate(images):
        at = f"images[{i}]"
        if not isinstance(image, dict):
            raise refuse(file, None, f"{at} must be an object, got {type(image).__name__}")
        splits[field(image, "split", str, file, None, at)] = None
        if image["split"] != split:
            continue
        name = field(image, "filename", str, file, None, at)
        folder = field(image, "filepath", str, file, None, at) if "filepath" in image else ""
        for j, sentence in enumerate(field(image, "sentences", list, file, None, at)):
            if not isinstance(sentence, dict):
                raise refuse(file, None, f"{at}.sentences[{j}] must be an object")
            captions.append(field(sentence, "raw", str, file, None, f"{at}.sentences[{j}]"))
            owners.append(len(ids))
        if name in ids:
            raise refuse(
                file, None, f"{at}: image {name!r} is listed twice (first at images[{ids[name]}])"
            )
        ids[name] = i
        paths.append(f"{folder}/{name}" if folder else name)
    if split not in splits:
        raise InputError(
            f"{file} has no split {split!r}; it has {', '.join(splits) or 'no images'}",
            argument="split",
        )
    return Benchmark(
        "karpathy",
        split,
        list(ids),
        {langs[0]: captions},
        _arrays({langs[0]: owners}),
        image_paths=paths,
    )


_READERS: dict[str, Callable[[Path, list[str] | None], Benchmark]] = {
    "xflickrco": _xflickrco,
    "wit": _wit,
    "xtd10": _xtd10,
    "multi30k": _multi30k,
    "multi30k-task2": _multi30k_task2,
    "xm3600": _xm3600,
}
