"""Unpickler restricted to numpy array reconstruction.

The animal-mnist wheel ships its images as gzip-compressed pickles.  ``pickle.load`` would
run whatever callable the file names; this unpickler resolves only the handful of numpy
globals an ``ndarray`` pickle needs and refuses everything else before it is called.
"""
from __future__ import annotations

import io
import pickle

import numpy as np

# (module, name) pairs an ndarray / numpy scalar pickle refers to (numpy 1.x and 2.x paths).
ALLOWED = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),   # protocol 5 out-of-band-capable arrays
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # protocol <= 2 writes bytes as _codecs.encode(str, 'latin1')
})


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle refers to something other than numpy array reconstruction."""


def _latin1_encode(obj, encoding="latin1", errors="strict"):
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refusing to load pickle: _codecs.encode with {encoding!r}")
    return obj.encode("latin1")


class NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise UnsafePickleError(
                f"refusing to load pickle: it references {module}.{name}, but only numpy "
                "array reconstruction is allowed")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.empty(0))[0]  # this numpy's _reconstruct
        if name == "_frombuffer":
            return np.arange(1).__reduce_ex__(5)[0]
        if name == "scalar":
            return np.int64(0).__reduce__()[0]
        if module == "_codecs":
            return _latin1_encode
        return getattr(np, name)

    def persistent_load(self, pid):
        raise UnsafePickleError("refusing to load pickle: persistent ids are not allowed")


def loads(data: bytes):
    """Unpickle ``data`` allowing numpy arrays/scalars only (plus plain containers/literals)."""
    return NumpyOnlyUnpickler(io.BytesIO(data)).load()
