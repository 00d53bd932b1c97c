"""Emitters: functions from the IR to the text of generated files.

``client`` writes the typed client package; ``modal`` (the Modal app) and
other emitters live beside it. Each is a pure function of the IR.
"""

from __future__ import annotations

from scopegen.emit.client import EmitError, emit_client, header_text

__all__ = ["EmitError", "emit_client", "header_text"]
