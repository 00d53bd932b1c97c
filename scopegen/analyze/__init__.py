"""Static analysis of interface files: source -> (Interface IR, diagnostics).

Nothing here imports the interface file or anything it imports.
"""

from __future__ import annotations

from scopegen.analyze._analysis import (
    Analysis,
    analyze_file,
    analyze_source,
    default_interface_name,
)
from scopegen.analyze._diagnostics import Diagnostic, Severity
from scopegen.analyze._units import Import, Unit, UnitKind, module_imports, module_units

__all__ = [
    "Analysis",
    "Diagnostic",
    "Import",
    "Severity",
    "Unit",
    "UnitKind",
    "analyze_file",
    "analyze_source",
    "default_interface_name",
    "module_imports",
    "module_units",
]
