"""Every stored array is checked against its header before it is used (issue 20, item 2).

A header that claims more bytes than its member holds would, memory-mapped, read the
next member's bytes as values; one that claims fewer would drop data unseen. The files
here are written by hand (zip members, .npy headers, safetensors headers, torch's zip
records) to say what real writers never say, and each must be refused naming the file
and the key. Files real writers make must still read back exactly as written.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

import ccr_metrics as cm
from ccr_metrics._containers import _pickled_storages

RNG = np.random.default_rng(0)


def npy_bytes(values: np.ndarray, claimed: tuple[int, ...]) -> bytes:
    """A .npy file holding ``values`` whose header claims shape ``claimed``."""
    out = io.BytesIO()
    header = {"descr": values.dtype.str, "fortran_order": False, "shape": claimed}
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + values.tobytes()


def rezip(source: Path, target: Path, change) -> Path:
    """Copy a zip member by member, each one's bytes through ``change(name, data)``."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data, compression = change(info.filename, old.read(info))
            new.writestr(info.filename, data, compress_type=compression)
    return target


ARRAYS = {
    "f64": RNG.standard_normal((3, 4)),
    "f32 fortran": np.asfortranarray(RNG.standard_normal((4, 2)).astype(np.float32)),
    "big-endian": RNG.standard_normal(5).astype(">f8"),
    "int": np.arange(7, dtype=np.int16),
    "scalar": np.float64(2.5),
    "empty": np.zeros((0, 3)),
    "bool": RNG.random((2, 2)) > 0.5,
}


@pytest.mark.parametrize("writer", [np.savez, np.savez_compressed])
def test_npz_written_by_numpy_reads_back_exactly(tmp_path, writer):
    writer(tmp_path / "a.npz", **ARRAYS)
    loaded = cm.load_arrays(tmp_path / "a.npz")
    assert list(loaded) == list(ARRAYS)
    for key, value in ARRAYS.items():
        np.testing.assert_array_equal(np.asarray(loaded[key]), value)
        assert np.asarray(loaded[key]).dtype == np.asarray(value).dtype


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("claimed", [(5,), (3,), (2, 3), ()])
def test_an_npz_header_that_misstates_the_size_is_refused(tmp_path, compression, claimed):
    """Four values, claimed as another count; the next member's bytes are never read."""
    neighbour = np.full(10, 1e300)
    with zipfile.ZipFile(tmp_path / "a.npz", "w", compression=compression) as archive:
        archive.writestr("i2t.en.npy", npy_bytes(np.arange(4.0), claimed))
        archive.writestr("next.npy", npy_bytes(neighbour, (10,)))
    with pytest.raises(cm.InputError) as caught:
        cm.load_arrays(tmp_path / "a.npz")
    message = str(caught.value)
    assert "a.npz" in message and "'i2t.en'" in message and f"{list(claimed)}" in message
    assert "32 bytes of data" in message


def test_an_npz_header_that_states_the_size_is_read(tmp_path):
    """A shape other than the writer's but of the same size is the header's own layout."""
    with zipfile.ZipFile(tmp_path / "a.npz", "w") as archive:
        archive.writestr("x.npy", npy_bytes(np.arange(6.0), (2, 3)))
    np.testing.assert_array_equal(cm.load_arrays(tmp_path / "a.npz")["x"], [[0, 1, 2], [3, 4, 5]])


@pytest.mark.parametrize("claimed", [(7,), (5,)])
def test_a_npy_file_whose_header_misstates_the_size_is_refused(tmp_path, claimed):
    (tmp_path / "r.npy").write_bytes(npy_bytes(np.arange(6.0), claimed))
    with pytest.raises(cm.InputError, match=r"r\.npy.*\[" + str(claimed[0]) + r"\]"):
        cm.load_ranks(tmp_path / "r.npy")
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "r.npy").rename(folder / "i2t.en.npy")
    with pytest.raises(cm.InputError, match=r"i2t\.en\.npy"):
        cm.load_arrays(folder)


# ------------------------------------------------------------------------------- .pt


def saved_pt(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    base = torch.arange(12.0).reshape(3, 4)
    tensors = {
        "image": base,
        "text.en": torch.ones(5, 2, dtype=torch.float16),
        "row": base[1],  # shares image's storage
        "bf16": torch.full((3,), 0.5, dtype=torch.bfloat16),
        "ids": torch.arange(4),
    }
    torch.save(tensors, tmp_path / "a.pt")
    return tmp_path / "a.pt", tensors


def test_the_pickle_scan_finds_the_storages_torch_builds(tmp_path):
    """Oracle: the records' sizes in the zip, and torch's own loaded storages."""
    path, tensors = saved_pt(tmp_path)
    with zipfile.ZipFile(path) as archive:
        claims, owners = _pickled_storages(archive.read("a/data.pkl"))
        records = {
            i.filename.rsplit("/", 1)[1]: i.file_size
            for i in archive.infolist()
            if "/data/" in i.filename
        }
    assert claims == records
    for key, storage_keys in owners.items():
        for name in storage_keys:
            assert tensors[name].untyped_storage().nbytes() == claims[key]
    assert sorted(owners[k] for k in owners) == [["bf16"], ["ids"], ["image", "row"], ["text.en"]]


def test_a_pt_file_reads_back_exactly(tmp_path):
    path, tensors = saved_pt(tmp_path)
    loaded = cm.load_arrays(path)
    assert list(loaded) == list(tensors)
    for key, value in tensors.items():
        assert torch.equal(loaded[key], value) and loaded[key].dtype == value.dtype


@pytest.mark.parametrize("record", ["0", "1", "2"])
def test_a_pt_record_cut_short_is_refused_naming_its_key(tmp_path, record):
    path, _ = saved_pt(tmp_path)
    cut = rezip(
        path,
        tmp_path / "cut.pt",
        lambda name, data: (data[:2] if name == f"a/data/{record}" else data, zipfile.ZIP_STORED),
    )
    with zipfile.ZipFile(path) as archive:
        _, owners = _pickled_storages(archive.read("a/data.pkl"))
    with pytest.raises(cm.InputError) as caught:
        cm.load_arrays(cut)
    message = str(caught.value)
    assert "cut.pt" in message and f"data/{record}" in message and "holds 2 bytes" in message
    assert all(repr(name) in message for name in owners[record])


def test_pt_records_stored_compressed_are_read_not_mapped(tmp_path):
    """torch maps a compressed record's raw bytes; read whole, they decompress."""
    path, tensors = saved_pt(tmp_path)
    deflated = rezip(
        path,
        tmp_path / "d.pt",
        lambda name, data: (
            data,
            zipfile.ZIP_DEFLATED if "/data/" in name else zipfile.ZIP_STORED,
        ),
    )
    loaded = cm.load_arrays(deflated)
    assert all(torch.equal(loaded[key], value) for key, value in tensors.items())


# ---------------------------------------------------------------------- safetensors


def safetensors_file(path: Path, header: dict | bytes, data: bytes) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_safetensors_written_by_the_library_read_back_exactly(tmp_path):
    arrays = {k: np.ascontiguousarray(v) for k, v in ARRAYS.items() if k != "big-endian"}
    save_file({k: np.atleast_1d(v) for k, v in arrays.items()}, tmp_path / "a.safetensors")
    loaded = cm.load_arrays(tmp_path / "a.safetensors")
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key], np.atleast_1d(value))


@pytest.mark.parametrize(
    "header",
    [b"[" * 100_000 + b"]" * 100_000, b"{" + b'"a": {' * 100_000 + b"}" * 100_001],
    ids=["lists", "maps"],
)
def test_a_safetensors_header_nested_deep_is_refused(tmp_path, header):
    path = safetensors_file(tmp_path / "a.safetensors", header, b"")
    with pytest.raises(cm.InputError, match=r"a\.safetensors.*nested too deeply"):
        cm.load_arrays(path)


def entry(begin: int, end: int) -> dict:
    return {"dtype": "F32", "shape": [(end - begin) // 4], "data_offsets": [begin, end]}


@pytest.mark.parametrize(
    ("spans", "words"),
    [
        ({"a": (0, 8), "b": (4, 12)}, ("'b' begins at byte 4", "'a'")),
        ({"a": (0, 12), "b": (4, 8)}, ("'b' begins at byte 4", "'a'")),
        ({"a": (0, 8), "b": (0, 8)}, ("begins at byte 0",)),
    ],
    ids=["overlapping", "inside", "the same"],
)
def test_safetensors_tensors_sharing_bytes_are_refused(tmp_path, spans, words):
    header = {key: entry(*span) for key, span in spans.items()}
    path = safetensors_file(tmp_path / "a.safetensors", header, bytes(12))
    with pytest.raises(cm.InputError) as caught:
        cm.load_arrays(path)
    assert all(word in str(caught.value) for word in ("a.safetensors", *words))


def test_safetensors_tensors_that_touch_are_read(tmp_path):
    values = np.arange(3, dtype=np.float32)
    header = {"a": entry(0, 8), "b": entry(8, 12), "empty": entry(12, 12)}
    path = safetensors_file(tmp_path / "a.safetensors", header, values.tobytes())
    loaded = cm.load_arrays(path)
    assert [loaded[k].tolist() for k in ("a", "b", "empty")] == [[0.0, 1.0], [2.0], []]


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (
            f'{{"a": {json.dumps(entry(0, 4))}, "a": {json.dumps(entry(0, 4))}}}'.encode(),
            "'a' twice",
        ),
        (json.dumps({"__metadata__": {"k": 1}, "a": entry(0, 4)}).encode(), "__metadata__"),
        (json.dumps({"__metadata__": ["k"], "a": entry(0, 4)}).encode(), "__metadata__"),
    ],
    ids=["a name twice", "metadata value not text", "metadata not a map"],
)
def test_safetensors_headers_outside_the_format_are_refused(tmp_path, header, words):
    path = safetensors_file(tmp_path / "a.safetensors", header, bytes(4))
    with pytest.raises(cm.InputError, match=r"a\.safetensors") as caught:
        cm.load_arrays(path)
    assert words in str(caught.value)


def test_a_stored_member_spanning_the_next_one_is_refused(tmp_path):
    """A directory entry stretched over the next member, checksum and header to match:
    mapped, its values would be that member's bytes."""
    tail = npy_bytes(np.arange(3.0), (3,))
    span = 32 + 30 + len("b.npy") + len(tail)  # a's data, then all of member b
    head = npy_bytes(np.zeros(0, np.uint8), (span,))
    with zipfile.ZipFile(tmp_path / "a.npz", "w") as archive:
        archive.writestr("a.npy", head + bytes(32))
        archive.writestr("b.npy", tail)
    raw = bytearray((tmp_path / "a.npz").read_bytes())
    entry = raw.index(b"PK\x01\x02")  # a's entry in the central directory
    stretched = raw[30 + len("a.npy") :][: len(head) + span]
    raw[entry + 16 : entry + 28] = struct.pack(
        "<III", zlib.crc32(stretched), len(stretched), len(stretched)
    )
    (tmp_path / "a.npz").write_bytes(bytes(raw))
    with pytest.raises(cm.InputError, match=r"a\.npz: key 'a' .*runs into the bytes"):
        cm.load_arrays(tmp_path / "a.npz")
