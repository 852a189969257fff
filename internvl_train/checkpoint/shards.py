"""Weight files: stream tensors out of safetensors / .bin (single or sharded + index); write safetensors shards."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from internvl_train.errors import CheckpointError

_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SINGLES = ("model.safetensors", "pytorch_model.bin")


def weight_files(path: Path) -> list[Path]:
    """The weight files of a checkpoint directory, in index order; a CheckpointError when there are none."""
    for name in _INDEXES:
        index = path / name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(
                    f"{index}: not a valid shard index ({exc}); it needs a 'weight_map' object"
                ) from exc
            files = list(dict.fromkeys(weight_map.values()))
            missing = [f for f in files if not (path / f).is_file()]
            if missing:
                raise CheckpointError(
                    f"{index}: shard(s) listed but missing: {', '.join(missing)}; download them again"
                )
            return [path / f for f in files]
    for name in _SINGLES:
        if (path / name).is_file():
            return [path / name]
    raise CheckpointError(f"{path}: no weights found (expected model.safetensors, pytorch_model.bin or a shard index)")


def iter_tensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) one at a time, each in memory of its own (nothing stays memory-mapped)."""
    for file in weight_files(path):
        if file.suffix == ".safetensors":
            yield from _read_safetensors(file)
        else:
            state = torch.load(str(file), map_location="cpu", weights_only=True, mmap=True)
            for key in list(state):
                yield key, state.pop(key).clone()  # off the memory map: the file is released once read
            del state


_DTYPES = {
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "F32": torch.float32,
    "F64": torch.float64,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _read_safetensors(file: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Read a safetensors file tensor by tensor with ``readinto`` straight into the tensor's own memory.

    Unlike a memory map, this keeps no file pages resident, so peak memory stays near the model's size even when
    one shard is a large part of the model. Layout: u64 header length, JSON header, then the raw data.
    """
    with open(file, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > size - 8:
                raise ValueError(f"header length {length} exceeds the file size {size}")
            header = json.loads(f.read(length))
            if not isinstance(header, dict):
                raise TypeError("the header is not a JSON object")
        except (struct.error, ValueError, TypeError) as exc:
            raise CheckpointError(f"{file}: not a safetensors file ({exc}); download it again") from exc
        start = 8 + length
        header.pop("__metadata__", None)
        _check_header(file, header, size - start)
        for key, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            if info["dtype"] not in _DTYPES:
                with safe_open(str(file), framework="pt") as handle:
                    yield key, handle.get_tensor(key).clone()
                continue
            begin, end = info["data_offsets"]
            tensor = torch.empty(info["shape"], dtype=_DTYPES[info["dtype"]])
            f.seek(start + begin)
            buffer = memoryview(tensor.view(-1).view(torch.uint8).numpy())  # type: ignore[arg-type]
            if end > begin and f.readinto(buffer) != end - begin:
                raise CheckpointError(f"{file}: truncated at tensor {key!r}; download it again")
            yield key, tensor


def _check_header(file: Path, header: dict, data_size: int) -> None:
    """Every entry has a dtype, a shape of non-negative ints and offsets inside the data whose span fits the shape
    (a corrupt header is a :class:`CheckpointError` naming the file, not an OverflowError from deep inside)."""
    for key, info in header.items():
        try:
            begin, end = info["data_offsets"]
            shape = info["shape"]
            ok = (
                isinstance(info["dtype"], str)
                and all(isinstance(d, int) and d >= 0 for d in shape)
                and isinstance(begin, int)
                and isinstance(end, int)
                and 0 <= begin <= end
            )
        except (KeyError, TypeError, ValueError):
            ok = False
        if ok and info["dtype"] in _DTYPES:
            n = 1
            for d in shape:
                n *= d
            ok = n * _DTYPES[info["dtype"]].itemsize == end - begin
        if not ok:
            raise CheckpointError(f"{file}: corrupt safetensors header at tensor {key!r}; download it again")
        if end > data_size:
            raise CheckpointError(f"{file}: truncated at tensor {key!r}; download it again")


def write_shards(
    out_dir: Path,
    planned: list[tuple[str, int]],
    produce: Callable[[list[str]], dict[str, torch.Tensor]],
    max_shard_bytes: int,
) -> None:
    """Write safetensors shards for ``planned`` (name, nbytes) in order; ``produce`` builds one shard's tensors.

    One file is ``model.safetensors``; several are ``model-0000k-of-0000n.safetensors`` plus the index.
    """
    groups: list[list[str]] = [[]]
    size = 0
    for name, nbytes in planned:
        if groups[-1] and size + nbytes > max_shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += nbytes
    n = len(groups)
    weight_map: dict[str, str] = {}
    for k, names in enumerate(groups, start=1):
        fname = "model.safetensors" if n == 1 else f"model-{k:05d}-of-{n:05d}.safetensors"
        save_file(produce(names), str(out_dir / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(names, fname))
    if n > 1:
        index = {"metadata": {"total_size": sum(b for _, b in planned)}, "weight_map": weight_map}
        (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
