"""Optional accelerators, the extra ``fast`` (``pip install 'dap-cd2[fast]'``): ISA-L's
inflate (python-isal, ``isal.isal_zlib``) for the parts' gzip streams, orjson for parsing
the JSON Lines that become Parquet.  Each is used only when it is installed, and the standard
library (``zlib``, ``json``) is the fallback that always works and gives the very same bytes.

``DAP_NO_FAST=1`` in the environment (any value but empty or ``0``) turns them off for the
process; tests switch them with :func:`configure`.

* Inflate: ``isal_zlib.decompressobj`` has zlib's interface and checks (gzip CRC and length,
  several members); a corrupt stream raises ``isal_zlib.error``, which ``INFLATE_ERRORS``
  holds beside ``zlib.error``.  Both release the GIL while inflating, so a read-ahead thread
  inflates while the writer works.
* JSON: orjson parses a line like ``json.loads`` with three exceptions, all kept away from it:
  integers beyond 64 bits (orjson makes them floats, silently: text holding 19 digits in a
  row is left to ``json``), NaN/Infinity/1e400 and lone surrogates (orjson refuses them, and
  ``json`` is asked instead).
"""
from __future__ import annotations

import os
import zlib
from typing import Any, Callable, List, Optional

__all__ = ["configure", "enabled", "available", "decompressobj", "INFLATE_ERRORS",
           "json_lines", "orjson_lines", "lines_parser"]


def _import_isal() -> Any:
    try:
        from isal import isal_zlib
    except ImportError:
        return None
    return isal_zlib


def _import_orjson() -> Any:
    try:
        import orjson
    except ImportError:
        return None
    return orjson


_ISAL = _import_isal()
_ORJSON = _import_orjson()

#: what a corrupt gzip stream raises, whichever inflater is used
INFLATE_ERRORS = (zlib.error,) + ((_ISAL.error,) if _ISAL is not None else ())

# bytes mapped so that every ASCII digit becomes b"0": a run of 19 of them is a number orjson
# might not take as json does (beyond 64 bits); cheap beside the parsing (bytes.translate)
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else b for b in range(256))
_LONG_NUMBER = b"0" * 19

_state = {"inflate": zlib, "orjson": None}


def configure(enabled: Optional[bool] = None) -> None:
    """Use the accelerators that are installed (``enabled`` True), or none of them (False);
    None: as ``DAP_NO_FAST`` says."""
    if enabled is None:
        enabled = os.environ.get("DAP_NO_FAST", "") in ("", "0")
    _state["inflate"] = _ISAL if enabled and _ISAL is not None else zlib
    _state["orjson"] = _ORJSON if enabled else None


def enabled() -> List[str]:
    """The accelerators in use now: a subset of ``["isal", "orjson"]``."""
    return ([name for name, on in (("isal", _state["inflate"] is not zlib),
                                   ("orjson", _state["orjson"] is not None)) if on])


def available() -> List[str]:
    """The accelerators installed (used unless turned off)."""
    return [name for name, module in (("isal", _ISAL), ("orjson", _ORJSON)) if module]


def decompressobj(wbits: int) -> Any:
    """A ``zlib.decompressobj(wbits)``, from ISA-L when it is in use."""
    return _state["inflate"].decompressobj(wbits)


def json_lines(body: bytes) -> Optional[List[Any]]:
    """The value of each line of ``body`` (UTF-8, lines parted by ``\\n``) parsed alone by
    orjson, as ``json.loads`` would parse it; None when orjson is not in use, or might differ,
    or refuses a line (a blank one too): then ``json`` is the one to ask."""
    if _state["orjson"] is None:
        return None
    return orjson_lines(body)


def orjson_lines(body: bytes) -> Optional[List[Any]]:
    """``json_lines`` whenever orjson is installed, in use here or not (a worker process
    is told by its parent whether to use it)."""
    orjson = _ORJSON
    if orjson is None or body.translate(_DIGITS).find(_LONG_NUMBER) != -1:
        return None
    try:
        return list(map(orjson.loads, body.split(b"\n")))
    except orjson.JSONDecodeError:  # NaN, 1e400, a lone surrogate, bad UTF-8, a blank line
        return None


def lines_parser() -> Optional[Callable[[bytes], Optional[List[Any]]]]:
    """``json_lines`` when orjson is in use now, else None (for callers that pick once)."""
    return json_lines if _state["orjson"] is not None else None


configure()
