"""The numpy-only unpickler loads arrays and refuses everything that could run code."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from zerodiffpp.data.safe_pickle import UnsafePickleError, loads


@pytest.mark.parametrize("proto", [2, 4, 5])
def test_arrays_and_scalars_load(proto):
    objs = [np.arange(12, dtype=np.uint8).reshape(3, 4), np.array([1.5, -2], dtype="<f8"),
            np.asfortranarray(np.ones((2, 3), np.int64)), np.float32(3.5), np.int64(7)]
    for obj in objs:
        out = loads(pickle.dumps(obj, protocol=proto))
        assert type(out) is type(obj) and np.array_equal(out, obj)
        if isinstance(obj, np.ndarray):
            assert out.dtype == obj.dtype
    assert loads(pickle.dumps({"a": [1, (2, "x")]})) == {"a": [1, (2, "x")]}


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


class _RunsEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def test_malicious_pickle_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsShell(marker))
    with pytest.raises(UnsafePickleError, match=r"refusing.*(posix|os|nt)\.system"):
        loads(payload)
    assert not marker.exists()
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        loads(pickle.dumps(_RunsEval()))
    # a numpy function that is not array reconstruction is refused too
    with pytest.raises(UnsafePickleError, match=r"numpy\.load"):
        loads(b"cnumpy\nload\n(S'x'\ntR.")
    with pytest.raises(pickle.UnpicklingError):
        loads(pickle.dumps(_RunsShell(marker))[:-5] + b"garbage")
    assert not marker.exists()
