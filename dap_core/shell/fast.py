"""Optional accelerator, the extra ``fast`` (``pip install 'dap-cd2[fast]'``): ISA-L's
inflate (python-isal, ``isal.isal_zlib``) for the parts' gzip streams.  It is used only when
it is installed, and the standard library's ``zlib`` is the fallback that always works and
gives the very same bytes.  (No JSON parser: no record is parsed; Parquet is read from TSV
in bulk by numpy, ``tsvfields``.)

``DAP_NO_FAST=1`` in the environment (any value but empty or ``0``) turns them off for the
process; tests switch them with :func:`configure`.

* Inflate: ``isal_zlib.decompressobj`` has zlib's interface and checks (gzip CRC and length,
  several members); a corrupt stream raises ``isal_zlib.error``, which ``INFLATE_ERRORS``
  holds beside ``zlib.error``.  Both release the GIL while inflating, so a read-ahead thread
  inflates while the writer works.
"""
from __future__ import annotations

import os
import zlib
from typing import Any, List, Optional

__all__ = ["configure", "enabled", "available", "decompressobj", "INFLATE_ERRORS"]


def _import_isal() -> Any:
    try:
        from isal import isal_zlib
    except ImportError:
        return None
    return isal_zlib


_ISAL = _import_isal()

#: what a corrupt gzip stream raises, whichever inflater is used
INFLATE_ERRORS = (zlib.error,) + ((_ISAL.error,) if _ISAL is not None else ())

_state = {"inflate": zlib}


def configure(enabled: Optional[bool] = None) -> None:
    """Use the accelerator where it is installed (``enabled`` True), or not (False); None: as
    ``DAP_NO_FAST`` says."""
    if enabled is None:
        enabled = os.environ.get("DAP_NO_FAST", "") in ("", "0")
    _state["inflate"] = _ISAL if enabled and _ISAL is not None else zlib


def enabled() -> List[str]:
    """The accelerators in use now: ``["isal"]`` or none."""
    return ["isal"] if _state["inflate"] is not zlib else []


def available() -> List[str]:
    """The accelerators installed (used unless turned off)."""
    return ["isal"] if _ISAL is not None else []


def decompressobj(wbits: int) -> Any:
    """A ``zlib.decompressobj(wbits)``, from ISA-L when it is in use."""
    return _state["inflate"].decompressobj(wbits)


configure()
