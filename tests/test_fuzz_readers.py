"""Fuzzing the three file readers: only the library's own InputError may escape.

Each reader (``.npz`` and ``.safetensors`` through ``load_embeddings`` /
``load_scores`` and on into ``evaluate``, report JSON through ``Report.load`` and on
into the numbers) is fed random bytes, truncations and byte flips of a valid file, and
valid files with one field edited. A file is either refused with an
:class:`~ccr_metrics.InputError` or read into numbers that can be used; nothing else
(IndexError, KeyError, TypeError, a numpy broadcast error) may come out. Pickled object
arrays are refused without being unpickled.
"""

from __future__ import annotations

import io
import json
import math
import struct
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as save_safetensors

import ccr_metrics as cm

# A few dozen examples per property keep the file within about 20 seconds on a CPU.
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SUFFIXES = (".npz", ".safetensors")


def arrays() -> dict[str, np.ndarray]:
    """A small valid embeddings file: two languages, one with several captions per image."""
    rng = np.random.default_rng(0)
    image = rng.standard_normal((5, 3)).astype(np.float32)
    return {
        "image": image,
        "text.en": rng.standard_normal((7, 3)).astype(np.float32),
        "text_to_image.en": np.array([0, 0, 1, 2, 3, 4, 4]),
        "text.de": (image + 0.1).astype(np.float32),
    }


def encode(suffix: str, named: dict[str, np.ndarray]) -> bytes:
    """The bytes of ``named`` saved as ``suffix``."""
    if suffix == ".npz":
        buffer = io.BytesIO()
        np.savez(buffer, **named)
        return buffer.getvalue()
    return save_safetensors(
        {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in named.items()}
    )


@cache
def valid_file(suffix: str) -> bytes:
    return encode(suffix, arrays())


@cache
def valid_report() -> bytes:
    """A saved report with intervals (every field the format has)."""
    named = arrays()
    report = cm.evaluate(
        named["image"],
        {"en": named["text.en"], "de": named["text.de"]},
        {"en": named["text_to_image.en"]},
        k=(1, 2),
        device="cpu",
    ).with_confidence(n_resamples=20)
    with tempfile.TemporaryDirectory() as tmp:
        report.save(Path(tmp) / "r.json")
        return (Path(tmp) / "r.json").read_bytes()


def read_embeddings(content: bytes, suffix: str) -> None:
    """Load ``content`` as an embeddings file and evaluate it, as the CLI's evaluate does."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"e{suffix}"
        path.write_bytes(content)
        try:
            image, texts, owners = cm.load_embeddings(path)
            cm.evaluate(image, texts, owners, k=(1, 2), device="cpu")
        except cm.InputError:
            pass


def read_scores(content: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"s{suffix}"
        path.write_bytes(content)
        try:
            i2t, t2i, owners = cm.load_scores(path)
            cm.evaluate_scores(i2t, t2i, owners, k=(1,), device="cpu")
        except cm.InputError:
            pass


def read_report(content: bytes) -> cm.Report | None:
    """Load ``content`` as a report and use it; None when it is refused."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.json"
        path.write_bytes(content)
        try:
            report = cm.Report.load(path)
        except cm.InputError as exc:
            assert str(exc).startswith(f"{path}: "), exc  # the message names the file
            return None
    # A report that loads gives its numbers, a table and new intervals without failing.
    assert json.loads(json.dumps(report.to_dict(), allow_nan=False))
    report.to_table()
    cm.bootstrap_intervals(report, n_resamples=5)
    return report


# ------------------------------------------------------------ bytes of any kind


@FUZZ
@given(content=st.binary(max_size=600), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes(content, suffix):
    read_embeddings(content, suffix)


@FUZZ
@given(data=st.data(), suffix=st.sampled_from(SUFFIXES))
def test_truncated_and_flipped_array_files(data, suffix):
    content = bytearray(valid_file(suffix))
    cut = data.draw(st.integers(0, len(content)), label="cut")
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(content) - 1), st.integers(0, 255)), max_size=3),
        label="flips",
    )
    for at, byte in flips:
        content[at] = byte
    read_embeddings(bytes(content[:cut]), suffix)


@FUZZ
@given(content=st.binary(max_size=400), prefix=st.sampled_from([b"", b"{", b'{"format": ']))
def test_random_bytes_as_a_report(content, prefix):
    assert read_report(prefix + content) is None


@FUZZ
@given(data=st.data())
def test_truncated_and_flipped_reports(data):
    content = bytearray(valid_report())
    cut = data.draw(st.integers(0, len(content) - 1), label="cut")
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(content) - 1), st.integers(32, 126)), max_size=2),
        label="flips",
    )
    for at, byte in flips:
        content[at] = byte
    if not flips:
        assert read_report(bytes(content[:cut])) is None  # a cut JSON document is no JSON
    else:
        read_report(bytes(content[:cut]) if data.draw(st.booleans()) else bytes(content))


# ------------------------------------------------------------- edited fields

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON document, the root excluded."""
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    out = []
    for key, child in children:
        out.append((*prefix, key))
        out.extend(paths(child, (*prefix, key)))
    return out


def retyped(value: Any) -> Any:
    """``value`` as another JSON type with the same content where there is one."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return (
            str(value) if isinstance(value, int) else int(value) if math.isfinite(value) else None
        )
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return 0


@settings(FUZZ, max_examples=120)
@given(data=st.data())
def test_reports_with_an_edited_field(data):
    document = json.loads(valid_report())
    every = paths(document)
    path = data.draw(st.sampled_from(every), label="path")
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    edit = data.draw(st.sampled_from(["delete", "replace", "retype", "nudge"]), label="edit")
    if edit == "delete":
        del parent[key]
    elif edit == "replace":
        parent[key] = data.draw(JSON_VALUES, label="value")
    elif edit == "retype":
        parent[key] = retyped(parent[key])
    elif isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
        parent[key] = parent[key] + data.draw(st.sampled_from([-1, 1, 0.5, 1000]), label="by")
    else:
        parent[key] = None
    report = read_report(json.dumps(document).encode())
    if report is not None:
        # An edit that loads changed nothing a number depends on (a setting such as
        # "source", an interval option): every number and interval is the saved one.
        original = read_report(valid_report())
        assert original is not None and report.intervals is not None
        assert report.to_flat_dict() == pytest.approx(original.to_flat_dict(), rel=1e-9)
        assert report.intervals.values == original.intervals.values


def npz_with(named: dict[str, Any], pickled: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=pickled, **named)
    return buffer.getvalue()


DTYPES = [
    "float16", "float32", "float64", "int8", "int32", "int64", "uint8", "uint64", "bool",
    "complex64", "<U2", "S2", "datetime64[s]", "<f8",
]  # fmt: skip


@st.composite
def odd_arrays(draw) -> np.ndarray:
    """An array of any dtype and of up to three dimensions, with NaN, inf or huge values."""
    shape = tuple(draw(st.lists(st.integers(0, 8), max_size=3)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    values = draw(st.sampled_from([0.0, 1.0, -1.0, math.nan, math.inf, 1e30, 7.0]))
    if dtype.kind in "USM":
        return np.zeros(shape, dtype=dtype)
    with np.errstate(all="ignore"):
        out = np.full(shape, values).astype(dtype)
    if out.size and draw(st.booleans()):
        out.flat[draw(st.integers(0, out.size - 1))] = draw(st.sampled_from([0, 2, 5, 100]))
    return out


KEYS = ["image", "text.en", "text_to_image.en", "text.de", "text_to_image.de", "text.", "i2t.en"]


@settings(FUZZ, max_examples=80)
@given(
    key=st.sampled_from(KEYS),
    edit=st.sampled_from(["replace", "delete"]),
    array=odd_arrays(),
    suffix=st.sampled_from(SUFFIXES),
)
def test_array_files_with_an_edited_key(key, edit, array, suffix):
    named = arrays()
    if edit == "delete":
        named.pop(key, None)
    else:
        named[key] = array
    if suffix == ".safetensors" and any(
        a.dtype.kind in "USMc" or a.dtype == np.uint64 for a in named.values()
    ):
        suffix = ".npz"  # safetensors holds neither strings nor dates, complex nor uint64
    content = npz_with(named) if suffix == ".npz" else encode(suffix, named)
    read_embeddings(content, suffix)
    read_scores(content, suffix)


class Hostile:
    """Unpickling this writes ``marker``: what a malicious file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


@settings(FUZZ, max_examples=15)
@given(key=st.sampled_from(["image", "text.en", "text_to_image.en", "i2t.en"]))
def test_pickled_object_arrays_are_refused_unrun(key):
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "marker"
        path = Path(tmp) / "e.npz"
        path.write_bytes(npz_with({**arrays(), key: np.array([Hostile(marker)])}, pickled=True))
        for load in (cm.load_embeddings, cm.load_scores, cm.load_arrays):
            with pytest.raises(cm.InputError, match="never unpickles"):
                load(path)
        assert not marker.exists()


def safetensors_of(header: Any, data: bytes, length: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


@cache
def valid_header() -> tuple[dict[str, Any], bytes]:
    content = valid_file(".safetensors")
    (length,) = struct.unpack("<Q", content[:8])
    return json.loads(content[8 : 8 + length]), content[8 + length :]


@settings(FUZZ, max_examples=80)
@given(data=st.data())
def test_safetensors_with_corrupt_headers(data):
    header, payload = valid_header()
    header = json.loads(json.dumps(header))
    kind = data.draw(st.sampled_from(["length", "field", "json", "tensor"]), label="kind")
    length = None
    if kind == "length":
        length = data.draw(
            st.sampled_from([0, 1, 7, 2**31, 2**63, 2**64 - 1]) | st.integers(0, 4000), label="n"
        )
    elif kind == "json":
        text = json.dumps(header).encode()
        header = text[: data.draw(st.integers(0, len(text) - 1))] + data.draw(st.binary(max_size=8))
    else:
        name = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
        if kind == "tensor":
            header[name] = data.draw(JSON_VALUES, label="tensor")
        else:
            field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]), label="field")
            header[name][field] = data.draw(
                st.sampled_from(["F32", "I64", "BOOL", "F8_E4M3", "U64", "x", None, -1, 2**70])
                | st.lists(st.integers(-3, 10**6), max_size=3)
                | JSON_VALUES,
                label="value",
            )
    read_embeddings(safetensors_of(header, payload, length), ".safetensors")


# -------------------------------------------------------- the controls


def test_the_valid_files_load():
    # The control for every property above: unedited, each file is read and evaluated.
    for suffix in SUFFIXES:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"e{suffix}"
            path.write_bytes(valid_file(suffix))
            assert cm.evaluate(*cm.load_embeddings(path), device="cpu").n_images == 5
    report = read_report(valid_report())
    assert report is not None and report.intervals is not None and report.ks == (1, 2)
    header, payload = valid_header()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.safetensors"
        path.write_bytes(safetensors_of(header, payload))  # rebuilt unedited: still valid
        assert list(cm.load_embeddings(path).texts) == ["de", "en"]
