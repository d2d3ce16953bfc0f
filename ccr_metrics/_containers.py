"""Reading untrusted array containers without unpickling: .npz, .npy, .safetensors, .pt.

What lies uncompressed in a file is memory-mapped rather than read: the members an
``np.savez`` archive stores, every tensor of a safetensors file, the ``.npy`` files of
a folder and the storages of a zip-format ``.pt`` file. Nothing here knows the key
layouts; :mod:`ccr_metrics.io` does.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import pickle
import pickletools
import re
import tokenize
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import torch

from .core._validation import InputError

#: An array read from a file: numpy (possibly memory-mapped) or a CPU tensor.
LoadedArray = npt.NDArray[Any] | torch.Tensor

NO_PICKLE = "ccr-metrics never unpickles files, as that can run code stored in them"
# What numpy and zipfile raise on a corrupt header or archive: numpy's header parser
# also raises tokenize's TokenError and SyntaxError, zipfile NotImplementedError (a
# RuntimeError) for features it lacks and BadZipFile (neither an OSError nor a ValueError).
_BROKEN = (
    ValueError,
    SyntaxError,
    tokenize.TokenError,
    OSError,
    EOFError,
    RuntimeError,
    zlib.error,
    zipfile.BadZipFile,
)


def read_npz(file: Path) -> dict[str, LoadedArray]:
    # Opened here, not by np.load, so the handle is closed when the archive is corrupt.
    with open(file, "rb") as handle:
        try:
            archive = np.load(handle, allow_pickle=False)
        except ValueError as exc:
            raise unreadable(file, ".npz archive", exc) from None
        except _BROKEN as exc:
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
            mapped = _npz_members(file)
            return {
                key: mapped[key] if key in mapped else _npz_member(archive, key, file)
                for key in archive.files
            }


def _npz_members(file: Path) -> dict[str, npt.NDArray[Any]]:
    """Check every ``.npy`` member of an archive against its header; map the stored ones.

    A member's header gives a shape and a dtype, and the member must hold exactly that
    many bytes after it: fewer, and a map of a stored member would run on into the next
    member's bytes; more, and the rest would be dropped unseen. ``np.savez`` stores its
    arrays uncompressed, each a ``.npy`` file lying whole in the archive, which is
    mapped at its offset (read when used); compressed members (``savez_compressed``)
    are left to the caller, which reads them once checked.
    """
    out: dict[str, npt.NDArray[Any]] = {}
    seen: set[str] = set()
    with zipfile.ZipFile(file) as archive, open(file, "rb") as raw:
        limits = _member_limits(archive, file.stat().st_size)
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            key = info.filename[: -len(".npy")]
            if key in seen:
                raise InputError(
                    f"{file}: key {key!r} is stored twice in the archive", argument=str(file)
                )
            seen.add(key)
            stored = info.compress_type == zipfile.ZIP_STORED
            try:
                if stored:
                    start = _member_start(raw, info)
                    shape, fortran, dtype = _npy_header(raw)
                    header = raw.tell() - start
                else:
                    with archive.open(info) as member:
                        shape, fortran, dtype = _npy_header(member)
                        header = member.tell()
            except _BROKEN as exc:  # RuntimeError: also an encrypted member
                raise InputError(
                    f"{file}: key {key!r} is unreadable ({exc})", argument=str(file)
                ) from None
            if dtype.hasobject:
                continue  # np.load refuses it as pickled, by name
            _check_data_size(file, key, shape, dtype, info.file_size - header)
            if not stored:
                continue
            if start + info.compress_size > limits[info.filename]:
                raise InputError(
                    f"{file}: key {key!r} is unreadable (it runs into the bytes of the next "
                    "member: the file is corrupt)",
                    argument=str(file),
                )
            if info.compress_size != info.file_size or not _crc_matches(raw, start, info):
                raise InputError(
                    f"{file}: key {key!r} is unreadable (its checksum does not match: the "
                    "file is corrupt)",
                    argument=str(file),
                )
            out[key] = np.memmap(
                raw.name,
                dtype=dtype,
                mode="r",
                offset=start + header,
                shape=shape,
                order="F" if fortran else "C",
            )
    return out


def _member_limits(archive: zipfile.ZipFile, size: int) -> dict[str, int]:
    """Where each member's bytes must end: at the next member, or the central directory.

    A member whose directory entry claims more bytes runs into its neighbour's.
    """
    # start_dir: where the central directory begins.
    starts = sorted({i.header_offset for i in archive.infolist()} | {archive.start_dir, size})
    return {
        info.filename: starts[min(bisect.bisect_right(starts, info.header_offset), len(starts) - 1)]
        for info in archive.infolist()
    }


def _member_start(raw: Any, info: zipfile.ZipInfo) -> int:
    """Where a zip member's bytes begin: past its local header, name and extra field."""
    raw.seek(info.header_offset)
    local = raw.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise ValueError("its local header is missing")
    name_length = int.from_bytes(local[26:28], "little")
    extra_length = int.from_bytes(local[28:30], "little")
    start = info.header_offset + 30 + name_length + extra_length
    raw.seek(start)
    return start


def _npy_header(stream: Any) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """Read a ``.npy`` header from ``stream``: ``(shape, fortran_order, dtype)``."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    if version in ((2, 0), (3, 0)):  # 3.0 differs only in the header's text encoding
        return np.lib.format.read_array_header_2_0(stream)
    raise ValueError(f"a .npy format version {version} that numpy does not write")


def _check_data_size(
    file: Path, key: str | None, shape: tuple[int, ...], dtype: np.dtype[Any], held: int
) -> None:
    """Refuse an array whose header claims other than the ``held`` bytes of data."""
    needed = math.prod(shape) * dtype.itemsize
    if needed != held:
        where = f"key {key!r}" if key is not None else "the array"
        raise InputError(
            f"{file}: {where} is unreadable: its header says shape {list(shape)} of {dtype} "
            f"({needed} bytes) but {max(held, 0)} bytes of data follow it (the file is "
            "corrupt or was cut short)",
            argument=str(file),
        )


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
    except _BROKEN as exc:
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
    _check_no_overlap(file, header)
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
        try:
            header = json.loads(handle.read(length).decode("utf-8"), object_pairs_hook=_unique)
        except RecursionError:
            # The format nests three deep at most; Python's parser gives up near 1,000.
            raise ValueError("its header is nested too deeply to be a map of tensors") from None
    if not isinstance(header, dict):
        raise ValueError("the header is not a map of tensors")
    for key, entry in header.items():
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise ValueError("__metadata__ in the header is not a map of strings to strings")
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


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object's dict, refusing a name given twice rather than overwriting it."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise ValueError(f"the header names {name!r} twice")
        out[name] = value
    return out


def _check_no_overlap(file: Path, header: dict[str, Any]) -> None:
    """Refuse two tensors of a safetensors header whose byte ranges overlap."""
    spans = sorted(
        (entry["data_offsets"][0], entry["data_offsets"][1], key)
        for key, entry in header.items()
        if key != "__metadata__" and entry["data_offsets"][0] != entry["data_offsets"][1]
    )
    for (_, end, before), (begin, _, after) in itertools.pairwise(spans):
        if begin < end:
            raise InputError(
                f"{file}: tensor {after!r} begins at byte {begin}, inside tensor "
                f"{before!r} (which ends at {end}): tensors never share bytes",
                argument=str(file),
            )


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
    except (InputError, MemoryError):
        raise
    except Exception as exc:  # torch raises errors of many types on a corrupt file
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
    """``torch.load`` without unpickling objects, memory-mapped where the file allows.

    torch sizes a mapped storage by what the pickle claims, not by its record, so each
    record is checked first (:func:`_pt_records_mappable`); the legacy (non-zip) format
    and compressed records are read whole, and torch checks their sizes itself.
    """
    mmap = _pt_records_mappable(file)
    return torch.load(file, weights_only=True, map_location="cpu", mmap=mmap)


def _pt_records_mappable(file: Path) -> bool:
    """Check each storage record of a zip-format ``.pt`` against the size its pickle claims.

    Returns whether every record can be mapped (all lie stored, uncompressed); False
    for the legacy format and where the archive or its pickle is broken, which torch
    then reports. Raises InputError for a record of another size than its storage
    needs, or one running into the next member: mapped, the tensor would read the
    bytes that follow the record.
    """
    try:
        with zipfile.ZipFile(file) as archive, open(file, "rb") as raw:
            infos = {info.filename: info for info in archive.infolist()}
            # torch's archive name: the folder of the first record.
            prefix = archive.infolist()[0].filename.split("/", 1)[0]
            claims, owners = _pickled_storages(archive.read(f"{prefix}/data.pkl"))
            records = {}
            for key in claims:
                records[key] = infos[f"{prefix}/data/{key}"]
                if records[key].compress_type != zipfile.ZIP_STORED:
                    return False
            limits = _member_limits(archive, file.stat().st_size)
            ends = {key: _member_start(raw, info) + info.file_size for key, info in records.items()}
    except (KeyError, IndexError, *_BROKEN):
        return False
    for key, needed in claims.items():
        if records[key].file_size != needed or ends[key] > limits[records[key].filename]:
            names = ", ".join(map(repr, owners.get(key, []))) or "?"
            raise InputError(
                f"{file}: storage record data/{key} (of key {names}) holds "
                f"{records[key].file_size} bytes but its tensor needs {needed} (the file is "
                "corrupt or was cut short)",
                argument=str(file),
            )
    return True


class _Built(NamedTuple):
    """An object the pickle builds, known here only by the storage records it refers to."""

    storages: frozenset[str]


class _Global(NamedTuple):
    """A global the pickle names (``"torch FloatStorage"``); nothing is imported."""

    name: str


_MARK = object()
# Storages an object may refer to and still be named after them: a tensor refers to
# one. Containers of more refer to none here (their items were named when put in
# them), so that following the stack stays linear in the pickle's length.
_FEW = 16


def _pickled_storages(data: bytes) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Find the storage records a ``.pt`` pickle refers to, from its opcodes (nothing runs).

    Returns ``({record key: bytes claimed}, {record key: dict keys of tensors on it})``.
    The pickle's stack is followed far enough to see each persistent id, the tuple
    ``("storage", torch.<Type>Storage, key, location, numel)`` torch resolves to a
    storage, and the string keys of the dicts the tensors are put in. Raises ValueError
    for a pickle that is malformed, refers to anything but a storage, or claims two
    sizes for one record.
    """
    stack: list[Any] = []
    memo: dict[Any, Any] = {}
    claims: dict[str, int] = {}
    owners: dict[str, list[str]] = {}
    for opcode, arg, _ in pickletools.genops(data):
        name = opcode.name
        if name == "STOP":
            break
        if name == "MARK":
            stack.append(_MARK)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name == "GLOBAL":
            stack.append(_Global(str(arg)))
        elif name == "STACK_GLOBAL":
            qualname, module = stack.pop(), stack.pop()
            stack.append(_Global(f"{module} {qualname}"))
        elif name in ("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE"):
            items = _pop_items(stack, name)
            # A tuple of constants stays one (a persistent id is); any other is known
            # by its storages only, so nothing here nests.
            plain = all(not isinstance(v, tuple) or isinstance(v, _Global) for v in items)
            stack.append(tuple(items) if plain else _Built(_union(items)))
        elif name == "BINPERSID":
            key, nbytes = _storage_claim(stack.pop())
            if claims.setdefault(key, nbytes) != nbytes:
                raise ValueError(f"record data/{key} claimed as {claims[key]} and {nbytes} bytes")
            stack.append(_Built(frozenset({key})))
        elif opcode.arg is not None and not opcode.stack_before:
            stack.append(arg)  # a constant: a string, a number
        else:
            if name in ("SETITEM", "SETITEMS"):
                _note_owners(stack, name, owners)
            _generic(stack, opcode)
    return claims, owners


def _pop_items(stack: list[Any], name: str) -> list[Any]:
    """Pop the items of a tuple opcode: those above the last mark, or the last 0 to 3."""
    if name == "TUPLE":
        mark = len(stack) - 1 - stack[::-1].index(_MARK)
        items = stack[mark + 1 :]
        del stack[mark:]
        return items
    count = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}[name]
    if len(stack) < count:
        raise IndexError("stack underflow")
    items = stack[len(stack) - count :]
    del stack[len(stack) - count :]
    return items


def _storage_claim(pid: Any) -> tuple[str, int]:
    """``(record key, bytes)`` of a persistent id, which must name a torch storage."""
    if (
        not isinstance(pid, tuple)
        or len(pid) != 5
        or pid[0] != "storage"
        or not isinstance(pid[1], _Global)
        or not isinstance(pid[2], str)
        or type(pid[4]) is not int
        or pid[4] < 0
    ):
        raise ValueError("a persistent id that is not a storage")
    module, _, type_name = pid[1].name.partition(" ")
    if module != "torch":
        raise ValueError(f"a storage of type {pid[1].name!r}")
    if type_name == "UntypedStorage":
        itemsize = 1
    else:
        try:
            itemsize = torch.serialization.StorageType(type_name).dtype.itemsize  # type: ignore[no-untyped-call]
        except (KeyError, AttributeError):
            raise ValueError(f"a storage of type {type_name!r}") from None
    return pid[2], pid[4] * itemsize


def _note_owners(stack: list[Any], name: str, owners: dict[str, list[str]]) -> None:
    """Name each storage after the string key of the dict item it is stored under."""
    if name == "SETITEM":
        pairs = [tuple(stack[-2:])]
    else:
        mark = len(stack) - 1 - stack[::-1].index(_MARK)
        items = stack[mark + 1 :]
        pairs = list(zip(items[::2], items[1::2], strict=False))
    for key, value in pairs:
        if isinstance(key, str) and isinstance(value, _Built):
            for storage in value.storages:
                owners.setdefault(storage, []).append(key)


def _union(values: list[Any]) -> frozenset[str]:
    """Collect the storages ``values`` (stack items) refer to; none past :data:`_FEW`."""
    sets = [v.storages for v in values if isinstance(v, _Built) and v.storages]
    if len(sets) == 1:
        return sets[0]  # shared, not copied
    found: set[str] = set()
    for storages in sets:
        found |= storages
        if len(found) > _FEW:
            return frozenset()
    return frozenset(found)


def _generic(stack: list[Any], opcode: pickletools.OpcodeInfo) -> None:
    """Apply an opcode's effect on the stack, keeping only which storages items refer to."""
    before = list(opcode.stack_before)
    popped: list[Any] = []
    if pickletools.markobject in before:
        mark = len(stack) - 1 - stack[::-1].index(_MARK)
        popped += stack[mark + 1 :]
        del stack[mark:]
        before = before[: before.index(pickletools.markobject)]
    for _ in before:
        popped.append(stack.pop())
    built = _Built(_union(popped))
    stack.extend(built for _ in opcode.stack_after)


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
    _check_npy_size(file)
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


def _check_npy_size(file: Path) -> None:
    """Refuse a ``.npy`` file whose header claims more or fewer values than it holds.

    A file that is no ``.npy`` file at all, or holds pickled objects, is left to
    np.load, which says what it is.
    """
    try:
        with open(file, "rb") as handle:
            np.lib.format.read_magic(handle)
    except (ValueError, OSError, EOFError):
        return  # not a .npy file at all (a zip, a pickle): np.load says which
    try:
        with open(file, "rb") as handle:
            shape, _, dtype = _npy_header(handle)
            header = handle.tell()
    except _BROKEN as exc:
        raise InputError(f"{file}: not a readable .npy file ({exc})", argument=str(file)) from None
    if not dtype.hasobject:
        _check_data_size(file, None, shape, dtype, file.stat().st_size - header)


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
