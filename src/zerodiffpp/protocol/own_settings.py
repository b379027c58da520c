"""Where a transductive method's own classifier settings sit in a selection's ``chosen`` block
(docs/protocol.md).  One rule for both readers, the final round
(:func:`.selection.method_config`) and the results table (``zerodiffpp.table``); torch-free, so
the table stage stays light.

Each method looks through its keys in order; none present means it runs with ZeroDiff's own
settings (for the DiffGen methods: ``diffgen.classifier_epochs`` / ``diffgen.calibration`` over
eval's).  ZeroDiff++ falls back to ZeroDiff + DiffGen's choice, the method it extends.
"""
from __future__ import annotations

from typing import Mapping, Optional

OWN_BLOCKS = {"zerodiff": (), "zerodiff_tta": ("tta",), "zerodiff_diffgen": ("diffgen",),
              "zerodiffpp": ("zerodiffpp", "diffgen")}


def own_block(chosen: Mapping, method: str) -> Optional[Mapping]:
    """The block of ``chosen`` with ``method``'s own settings, or None: the top-level settings
    (ZeroDiff's; a method outside OWN_BLOCKS, e.g. a baseline, has only those)."""
    return next((chosen[key] for key in OWN_BLOCKS.get(method, ()) if chosen.get(key)), None)
