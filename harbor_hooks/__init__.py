"""harbor_hooks: turn Harbor trial directories into SFT datasets, by hand or when jobs complete.

Heavy libraries (datasets, pyarrow, huggingface_hub) load only when used.
"""

from __future__ import annotations

from typing import Any

from harbor_hooks.version import __version__
__all__ = ["export_traces", "hookimpl", "HooksSettings", "ExportSettings", "SettingsError", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "export_traces":
        from harbor_hooks.api import export_traces
        return export_traces
    if name == "hookimpl":
        from harbor_hooks.hooks.specs import hookimpl
        return hookimpl
    if name == "SettingsError":
        from harbor_hooks.errors import SettingsError
        return SettingsError
    if name in ("HooksSettings", "ExportSettings"):
        from harbor_hooks import settings
        return getattr(settings, name)
    raise AttributeError(f"module 'harbor_hooks' has no attribute {name!r}")
