"""Reading untrusted array containers without unpickling: .npz, .npy, .safetensors, .pt.

What lies uncompressed in a file is memory-mapped rather than read: the members an
``np.savez`` archive stores, every tensor of a safetensors file, the ``.npy`` files of
a folder and the storages of a zip-format ``.pt`` file. Nothing here knows the key
layouts; :mod:`ccr_metrics.io` does.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from .core._validation import InputError

#: An array read from a file: numpy (possibly memory-mapped) or a CPU tensor.
LoadedArray = npt.NDArray[Any] | torch.Tensor

NO_PICKLE = "ccr-metrics never unpickles files, as that can run code stored in them"


def read_npz(file: Path) -> dict[str, LoadedArray]:
    # Opened here, not by np.load, so the handle is closed when the archive is corrupt.
    with open(file, "rb") as handle:
        try:
            archive = np.load(handle, allow_pickle=False)
        except ValueError as exc:
            raise unreadable(file, ".npz archive", exc) from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise InputError(
                f"{file}: not a readable .npz archive ({exc})", argument=str(file)
            ) from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise InputError(
                f"{file}: holds a single array {list(archive.shape)}, not named arrays; "
                "save with np.savez(path, image=..., **{'text.en': ...})",
                argument=str(file),
            )
        with archive:
            mapped = _stored_members(file)
            return {
                key: mapped[key] if key in mapped else _npz_member(archive, key, file)
                for key in archive.files
            }


def _stored_members(file: Path) -> dict[str, npt.NDArray[Any]]:
    """Map the uncompressed members of an ``.npz`` into memory (read when used).

    ``np.savez`` stores its arrays uncompressed: each is a ``.npy`` file lying whole in
    the archive, which can be mapped at its offset. Compressed members (``savez_
    compressed``) cannot; the caller reads those.
    """
    out: dict[str, npt.NDArray[Any]] = {}
    with zipfile.ZipFile(file) as archive, open(file, "rb") as raw:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                continue
            raw.seek(info.header_offset)
            local = raw.read(30)
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                continue
            name_length = int.from_bytes(local[26:28], "little")
            extra_length = int.from_bytes(local[28:30], "little")
            start = info.header_offset + 30 + name_length + extra_length
            raw.seek(start)
            try:
                version = np.lib.format.read_magic(raw)
                read_header = {
                    (1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0,
                }.get(version)
                if read_header is None:
                    continue
                shape, fortran, dtype = read_header(raw)
            except ValueError:
                continue  # left to np.load, which says what is wrong
            data = raw.tell()
            if dtype.hasobject or info.file_size < data - start:
                continue
            if not _crc_matches(raw, start, info):
                raise InputError(
                    f"{file}: key {info.filename[: -len('.npy')]!r} is unreadable (its "
                    "checksum does not match: the file is corrupt)",
                    argument=str(file),
                )
            out[info.filename[: -len(".npy")]] = np.memmap(
                raw.name,
                dtype=dtype,
                mode="r",
                offset=data,
                shape=shape,
                order="F" if fortran else "C",
            )
    return out


def _npz_member(archive: Any, key: str, file: Path) -> npt.NDArray[Any]:
    try:
        return np.asarray(archive[key])
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InputError(
                f"{file}: key {key!r} is an object array of pickled Python objects "
                f"({NO_PICKLE}); save numeric arrays",
                argument=str(file),
            ) from None
        raise InputError(f"{file}: key {key!r} is unreadable ({exc})", argument=str(file)) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise InputError(f"{file}: key {key!r} is unreadable ({exc})", argument=str(file)) from None


def unreadable(file: Path, kind: str, exc: ValueError) -> InputError:
    """Translate a ValueError of np.load: pickled content, or a broken header."""
    if "Object arrays" in str(exc) or "Python objects" in str(exc):
        return InputError(
            f"{file}: holds an object array of pickled Python objects ({NO_PICKLE})",
            argument=str(file),
        )
    if "allow_pickle" in str(exc):
        # Neither zip nor .npy: numpy's last resort would be to unpickle it.
        return InputError(
            f"{file}: not a {kind}; it could only be read as a pickle ({NO_PICKLE})",
            argument=str(file),
        )
    return InputError(f"{file}: not a readable {kind} ({exc})", argument=str(file))


def _crc_matches(raw: Any, start: int, info: zipfile.ZipInfo) -> bool:
    """Whether a stored member's bytes match its CRC-32: read in 16 MB pieces, not held."""
    raw.seek(start)
    crc, left = 0, info.file_size
    while left:
        piece = raw.read(min(left, 1 << 24))
        if not piece:
            return False
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    return crc == info.CRC


def read_safetensors(file: Path) -> dict[str, LoadedArray]:
    """Every tensor of a safetensors file, memory-mapped (read when used).

    The format is an 8-byte header length, a JSON header naming each tensor's dtype,
    shape and byte range, then the raw data: each tensor is mapped at its range.
    """
    try:
        header, data_start = _safetensors_header(file)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{file}: not a readable safetensors file ({exc})", argument=str(file)
        ) from None
    size = file.stat().st_size
    out: dict[str, LoadedArray] = {}
    for key in sorted(k for k in header if k != "__metadata__"):
        entry = header[key]
        dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _SAFETENSORS_DTYPES:
            raise InputError(
                f"{file}: tensor {key!r} has dtype {dtype}, not one this library reads",
                argument=str(file),
            )
        storage, as_torch = _SAFETENSORS_DTYPES[dtype]
        count = math.prod(shape)
        if not 0 <= begin <= end <= size - data_start or end - begin != count * storage.itemsize:
            raise InputError(
                f"{file}: tensor {key!r} claims bytes {begin}..{end} for shape {shape} of "
                f"{dtype}, which the file does not hold",
                argument=str(file),
            )
        if count == 0:
            array: npt.NDArray[Any] = np.zeros(shape, dtype=storage)
        else:
            array = np.memmap(
                file, dtype=storage, mode="r", offset=data_start + begin, shape=tuple(shape)
            )
        if as_torch is not None:
            with warnings.catch_warnings():
                # Read-only maps are fine: nothing writes to loaded scores.
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                out[key] = torch.from_numpy(array).view(as_torch)
        else:
            out[key] = array
    return out


def _safetensors_header(file: Path) -> tuple[dict[str, Any], int]:
    """Read the JSON header of a safetensors file; return it and where the data starts."""
    with open(file, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if length <= 0 or length > min(file.stat().st_size - 8, 1 << 27):
            raise ValueError(f"a header of {length} bytes")
        header = json.loads(handle.read(length).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("the header is not a map of tensors")
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise ValueError(f"tensor {key!r} in the header has no dtype, shape and data_offsets")
        shape, offsets = entry["shape"], entry["data_offsets"]
        if (
            not isinstance(entry["dtype"], str)
            or not _naturals(shape)
            or not _naturals(offsets)
            or len(offsets) != 2
        ):
            raise ValueError(
                f"tensor {key!r} in the header has dtype {entry['dtype']!r}, shape {shape!r} "
                f"and data_offsets {offsets!r}: expected a name, a list of sizes and "
                "[begin, end]"
            )
    return header, 8 + length


def _naturals(value: Any) -> bool:
    """Whether ``value`` is a JSON list of non-negative integers (a bool is no size)."""
    return isinstance(value, list) and all(type(v) is int and v >= 0 for v in value)


def read_pt(file: Path) -> dict[str, LoadedArray]:
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it did not write; the outcome is what counts.
            warnings.simplefilter("ignore")
            obj = _torch_load(file)
    except pickle.UnpicklingError as exc:
        # Both a corrupt file and one that asks for code end here: say what torch saw.
        found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\. |\n|$)", str(exc))
        reason = f": {found.group(1).strip()}" if found else ""
        raise InputError(
            f"{file}: refused: not a dict of tensors readable without unpickling objects"
            f"{reason} ({NO_PICKLE}; re-save as a dict of tensors, .safetensors or .npz)",
            argument=str(file),
        ) from None
    except (RuntimeError, OSError, EOFError) as exc:
        first_line = str(exc).split("\n", 1)[0].split(". ", 1)[0]
        raise InputError(
            f"{file}: not a readable PyTorch file ({first_line})", argument=str(file)
        ) from None
    if not isinstance(obj, dict):
        raise InputError(
            f"{file}: holds a {type(obj).__name__}, not a dict of tensors; "
            "save with torch.save({'image': ..., 'text.en': ...}, path)",
            argument=str(file),
        )
    not_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise InputError(
            f"{file}: the values of keys {not_tensors} are not tensors", argument=str(file)
        )
    not_named = [k for k in obj if not isinstance(k, str)]
    if not_named:
        raise InputError(f"{file}: keys {not_named} are not strings", argument=str(file))
    return dict(obj)


def _torch_load(file: Path) -> Any:
    """``torch.load`` without unpickling objects, memory-mapped where the file allows."""
    try:
        return torch.load(file, weights_only=True, map_location="cpu", mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):  # only the legacy (non-zip) format cannot be mapped
            raise
        return torch.load(file, weights_only=True, map_location="cpu")


# safetensors dtype -> (numpy storage, torch view; None when numpy holds it as it is)
_SAFETENSORS_DTYPES: dict[str, tuple[np.dtype[Any], torch.dtype | None]] = {
    "F64": (np.dtype(np.float64), None),
    "F32": (np.dtype(np.float32), None),
    "F16": (np.dtype(np.float16), None),
    "BF16": (np.dtype(np.uint16), torch.bfloat16),
    "I64": (np.dtype(np.int64), None),
    "I32": (np.dtype(np.int32), None),
    "I16": (np.dtype(np.int16), None),
    "I8": (np.dtype(np.int8), None),
    "U8": (np.dtype(np.uint8), None),
    "BOOL": (np.dtype(np.bool_), None),
}

READERS = {".npz": read_npz, ".safetensors": read_safetensors, ".pt": read_pt}


def read_npy(file: Path, *, mapped: bool = False) -> npt.NDArray[Any]:
    """Read the one array of a ``.npy`` file; memory-mapped with ``mapped``."""
    try:
        # A path, not a handle: numpy maps only files it opens, and closes them on error.
        loaded = np.load(file, mmap_mode="r" if mapped else None, allow_pickle=False)
    except ValueError as exc:
        raise unreadable(file, ".npy file", exc) from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{file}: not a readable .npy file ({exc})", argument=str(file)) from None
    if not isinstance(loaded, np.ndarray):
        loaded.close()
        raise InputError(f"{file}: is an .npz archive, not one .npy array", argument=str(file))
    return loaded


def read_npy_folder(folder: Path) -> dict[str, LoadedArray]:
    """Every ``<key>.npy`` of a folder, memory-mapped; any other file is refused."""
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    others = [p.name for p in files if p.suffix.lower() != ".npy" or not p.is_file()]
    if others:
        raise InputError(
            f"{folder}: a folder of arrays holds only <key>.npy files, found {others[0]!r}",
            argument=str(folder),
        )
    return {file.name[: -len(".npy")]: read_npy(file, mapped=True) for file in files}
