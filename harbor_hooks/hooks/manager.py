"""The PluginManager: the built-in exporter plus the `harbor_hooks` entry-point group.

Every hook is called through pluggy (`pm.hook.<name>`), so wrappers (`wrapper=True`),
`tryfirst` / `trylast` and hook-call monitoring all work. Each implementation is guarded:
its failure is caught, logged and collected, and the other plugins still run.
"""

from __future__ import annotations

import contextvars
import functools
from dataclasses import dataclass
from typing import Any

import pluggy

from harbor_hooks.hooks import specs
from harbor_hooks.log import get_logger

ENTRY_POINT_GROUP = "harbor_hooks"
_failures: contextvars.ContextVar[list[HookFailure] | None] = contextvars.ContextVar(
    "harbor_hooks_hook_failures", default=None)


@dataclass
class HookFailure:
    plugin: str
    hook: str
    error: str

    def line(self) -> str:
        return f"{self.plugin}.{self.hook} failed: {self.error}"


def get_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    from harbor_hooks.hooks.exporter import ExporterPlugin

    pm = pluggy.PluginManager(specs.PROJECT)
    pm.add_hookspecs(specs)
    pm.register(ExporterPlugin(), name="exporter")
    if load_entry_points:
        _load_entry_points(pm)
    try:
        pm.check_pending()  # a hook name no spec knows (a typo) would never be called
    except pluggy.PluginValidationError as exc:
        get_logger().warning("plugin implements an unknown hook", error=str(exc))
    return pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    """Every plugin of the entry-point group, each on its own: one that fails to load is
    logged and the others still load (pluggy's own loader stops at the first failure)."""
    from importlib.metadata import distributions

    for dist in list(distributions()):
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or pm.get_plugin(ep.name) or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken third-party plugin must not stop the job
                get_logger().error("plugin failed to load", plugin=ep.name,
                                   error=f"{type(exc).__name__}: {exc}")
                continue
            pm._plugin_distinfo.append((plugin, pluggy._manager.DistFacade(dist)))


def plugin_origin(pm: pluggy.PluginManager, plugin: Any) -> str:
    for dist_plugin, dist in pm.list_plugin_distinfo():
        if dist_plugin is plugin:
            return f"{dist.project_name} {dist.version} (entry point {ENTRY_POINT_GROUP})"
    return f"built-in ({type(plugin).__module__})"


def describe_plugins(pm: pluggy.PluginManager | None = None) -> list[tuple[str, str, list[str]]]:
    pm = pm or get_plugin_manager()
    out = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        out.append((name, plugin_origin(pm, plugin), hooks))
    return out


def _record(plugin: str, hook: str, exc: BaseException) -> None:
    failure = HookFailure(plugin, hook, f"{type(exc).__name__}: {exc}".strip())
    get_logger().error("hook failed", plugin=plugin, hook=hook, error=failure.error)
    sink = _failures.get()
    if sink is not None:
        sink.append(failure)


def _guard(pm: pluggy.PluginManager, hook: str) -> None:
    """Wrap each plain implementation of hook (once) so that its failure is recorded, not
    raised: the call goes on to the other implementations and through the wrappers."""
    for impl in getattr(pm.hook, hook).get_hookimpls():
        if impl.wrapper or impl.hookwrapper or getattr(impl.function, "_harbor_hooks_guarded", False):
            continue
        name = pm.get_name(impl.plugin) or type(impl.plugin).__name__

        def guarded(*args: Any, _function=impl.function, _name=name) -> Any:
            try:
                return _function(*args)
            except (Exception, SystemExit) as exc:  # a hook must never interrupt the run
                _record(_name, hook, exc)
                return None

        functools.update_wrapper(guarded, impl.function)
        guarded._harbor_hooks_guarded = True  # type: ignore[attr-defined]
        impl.function = guarded


def call_hook(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> list[HookFailure]:
    """pm.hook.<hook>(**kwargs), every implementation's failure collected instead of raised."""
    _guard(pm, hook)
    failures: list[HookFailure] = []
    token = _failures.set(failures)
    try:
        getattr(pm.hook, hook)(**kwargs)
    except (Exception, SystemExit) as exc:  # a wrapper's own failure
        _record("wrapper", hook, exc)
    finally:
        _failures.reset(token)
    return failures
