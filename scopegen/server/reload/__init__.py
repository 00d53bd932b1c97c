"""``scopegen serve --reload``: re-execute an edited interface, keeping loaded models."""

from __future__ import annotations

from scopegen.server.reload._reloader import Reloader

__all__ = ["Reloader"]
