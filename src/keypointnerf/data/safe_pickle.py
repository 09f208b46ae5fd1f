"""Load ``.npy`` files, including those holding pickled Python objects, without running code from them.

ZJU-MoCap's ``annots.npy`` and ``params/<i>.npy`` are ``np.save``-d Python dicts, i.e. pickles. ``np.load(...,
allow_pickle=True)`` would execute whatever a crafted file asks for; :func:`load_npy` instead parses the
``.npy`` header itself and unpickles object arrays with :class:`RestrictedUnpickler`, which resolves only the
handful of globals a numpy object array needs (array / dtype / scalar reconstruction and a few pure-data
builtins). Anything else is refused with a :class:`~keypointnerf.errors.UserError` naming the file and the
forbidden global, before any of it is called.
"""
from __future__ import annotations

import _codecs
import builtins
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from ..errors import UserError

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric


def _latin1_encode(text, encoding="latin1", errors="strict"):
    """Stand-in for ``_codecs.encode``: protocol-2 pickles written by Python 3 store ``bytes`` as
    ``_codecs.encode(str, 'latin1')``. Only that codec is admitted (a codec name triggers a module import)."""
    if str(encoding).lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode with codec {encoding!r} is not allowed")
    return _codecs.encode(text, "latin1", errors)


# (module, name) -> object. Both numpy 1 (``numpy.core``) and numpy 2 (``numpy._core``) spellings map to the
# installed implementation, so files written by either version load.
_ALLOWED: dict[tuple[str, str], Any] = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(_mod, "scalar")] = _multiarray.scalar
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    # protocol-5 array pickles rebuild from a buffer
    _ALLOWED[(_mod, "_frombuffer")] = _numeric._frombuffer
_ALLOWED[("numpy", "ndarray")] = np.ndarray
_ALLOWED[("numpy", "dtype")] = np.dtype
for _name in ("set", "frozenset", "complex", "bytearray"):
    _ALLOWED[("builtins", _name)] = getattr(builtins, _name)
    _ALLOWED[("__builtin__", _name)] = getattr(builtins, _name)  # Python 2 pickles
_ALLOWED[("_codecs", "encode")] = _latin1_encode


class ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.qualname = f"{module}.{name}"


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in the allow-list (numpy array/dtype/scalar
    reconstruction, set/frozenset/complex/bytearray) and refuses every other one."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise ForbiddenGlobal(module, name) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")


def safe_unpickle(data: bytes | Any, source: str = "<pickle>") -> Any:
    """Unpickle ``data`` (bytes or a binary file object) with :class:`RestrictedUnpickler`.

    Raises UserError("<source>: ...") on a forbidden global or a corrupt pickle.
    """
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        return RestrictedUnpickler(stream, encoding="latin1").load()
    except ForbiddenGlobal as exc:
        raise UserError(f"{source}: refused to unpickle: it references the forbidden global "
                        f"{exc.qualname} (a pickle that could run code)") from None
    except UserError:
        raise
    except Exception as exc:  # truncated / corrupt stream: pickle raises many types
        raise UserError(f"{source}: unreadable pickle ({type(exc).__name__}: {exc})") from None


def to_plain(obj: Any) -> Any:
    """Unwrap 0-d object arrays and numpy scalars; recurse into dicts, lists and tuples.

    Numeric arrays stay arrays; object arrays of other shapes become (nested) lists.
    """
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            if obj.ndim == 0:
                return to_plain(obj.item())
            return [to_plain(x) for x in obj.tolist()]
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_plain(v) for v in obj)
    return obj


def load_npy(path: str | Path) -> Any:
    """Read a ``.npy`` file without executing code.

    Numeric arrays load with ``allow_pickle=False`` and come back as ``np.ndarray``. Object arrays are
    unpickled with :class:`RestrictedUnpickler` and unwrapped by :func:`to_plain`: a 0-d object array holding
    a dict (what ``np.save(path, some_dict)`` writes) returns the dict, with numpy arrays inside kept as arrays
    and numpy scalars turned into Python numbers.

    Raises UserError("<path>: <problem>") for a missing file, a bad header, a truncated payload, or a pickle
    referencing anything outside the allow-list.
    """
    path = Path(path)
    try:
        stream = open(path, "rb")
    except OSError as exc:
        raise UserError(f"{path}: cannot open ({exc.strerror or exc})") from None
    with stream:
        try:
            version = npy_format.read_magic(stream)
            if version == (1, 0):
                shape, fortran_order, dtype = npy_format.read_array_header_1_0(stream)
            elif version in ((2, 0), (3, 0)):
                shape, fortran_order, dtype = npy_format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"{path}: not a valid .npy file ({exc})") from None
        if not dtype.hasobject:
            stream.seek(0)
            try:
                return np.load(stream, allow_pickle=False)
            except Exception as exc:
                raise UserError(f"{path}: unreadable array data ({exc})") from None
        obj = safe_unpickle(stream, source=str(path))
    if not isinstance(obj, np.ndarray):
        # np.save always pickles an ndarray; anything else is not what the header promised
        raise UserError(f"{path}: pickled payload is a {type(obj).__name__}, not an array")
    return to_plain(obj)
