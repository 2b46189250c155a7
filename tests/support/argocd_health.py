"""Running docs/argocd/health.lua on ApiService objects, as Argo CD runs a health check.

Argo CD runs health scripts with gopher-lua, a Lua 5.1, and passes the object as the global
`obj`. lupa's bundled Lua 5.1 is the closest stand-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lupa.lua51 as lua51

from tests.support.cluster import ROOT

HEALTH_SCRIPT = ROOT / "docs" / "argocd" / "health.lua"


def run_health_check(obj: Mapping[str, Any], script: str | None = None) -> tuple[str, str]:
    """Run the health script on an object and return Argo CD's (status, message)."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(dict(obj), recursive=True)
    result = runtime.execute(script if script is not None else HEALTH_SCRIPT.read_text())
    return str(result["status"]), str(result["message"])
