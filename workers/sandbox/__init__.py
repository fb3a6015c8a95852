"""Running model-written programs safely and fast. See client.py (API) and server.py (design).

The names below are imported lazily: the fork server imports submodules of this package, and
every module it loads makes each fork and exit dearer, so it must not pull in the client's.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # mypy reads it as True; importing typing would load it into the fork server

if TYPE_CHECKING:
    from typing import Any

    from workers.sandbox.client import DEFAULT_PRELOAD as DEFAULT_PRELOAD
    from workers.sandbox.client import Sandbox as Sandbox
    from workers.sandbox.client import SandboxError as SandboxError
    from workers.sandbox.limits import Limits as Limits
    from workers.sandbox.result import SandboxResult as SandboxResult
    from workers.sandbox.result import Status as Status

_EXPORTS = {
    "DEFAULT_PRELOAD": "workers.sandbox.client",
    "Sandbox": "workers.sandbox.client",
    "SandboxError": "workers.sandbox.client",
    "Limits": "workers.sandbox.limits",
    "SandboxResult": "workers.sandbox.result",
    "Status": "workers.sandbox.result",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
