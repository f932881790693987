"""The one place that talks to pluggy: loads plugins and collects what they register.

Plugins come from the `convparity` entry-point group; the built-in ones are also imported from
BUILTIN_PLUGINS when the project is used without being installed. `CONVPARITY_PLUGINS=a,b` restricts
loading to the named plugins (entry-point names). `CONVPARITY_TRACE_HOOKS=1` prints every hook call.
`CONVPARITY_EXTRA_PLUGINS=pkg.module,...` also registers those modules by import path (a plugin tried
without packaging it, or the test suite's misbehaving backends); run workers inherit it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from functools import cache

import pluggy

from harness.backends import hookspecs
from harness.backends.contract import Backend, check_backend
from harness.cases.grids import Grid

PROJECT = "convparity"
BUILTIN_PLUGINS = {
    "reference": "plugins.reference_backend",
    "torch": "plugins.torch_backend",
    "tensorflow": "plugins.tensorflow_backend",
    "jax": "plugins.jax_backend",
    "onnxruntime": "plugins.onnxruntime_backend",
    "keras": "plugins.keras_backend",
}
CORE_PLUGINS = {"grids": "harness.cases.builtin_grids"}


class PluginError(Exception):
    """A plugin that cannot be loaded or registers something invalid."""


class PluginManager:
    """Wraps pluggy's manager with one typed method per hook."""

    def __init__(self, only: set[str] | None = None, extra: tuple[str, ...] = ()) -> None:
        """`only`: load just these plugins (entry-point names); `extra`: also import these modules."""
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(hookspecs)
        if os.environ.get("CONVPARITY_TRACE_HOOKS"):
            self._pm.trace.root.setwriter(lambda message: print(message, end="", file=sys.stderr))
            self._pm.enable_tracing()
        for name, module in CORE_PLUGINS.items():
            self._pm.register(importlib.import_module(module), name=name)
        if only is not None:
            for name in self._entry_point_names() | set(BUILTIN_PLUGINS):
                if name not in only:
                    self._pm.set_blocked(name)
        self._load_entry_points()
        for name, module in BUILTIN_PLUGINS.items():
            if self._pm.get_plugin(name) is None and not self._pm.is_blocked(name):
                try:
                    self._pm.register(importlib.import_module(module), name=name)
                except ModuleNotFoundError as error:
                    if error.name != module:
                        raise
        for module in extra:
            try:
                self._pm.register(importlib.import_module(module), name=module)
            except ImportError as error:
                raise PluginError(f"CONVPARITY_EXTRA_PLUGINS: cannot import {module!r}: {error}") from error
        self._pm.check_pending()

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for entry_point in entry_points(group=PROJECT):
            if self._pm.get_plugin(entry_point.name) is not None or self._pm.is_blocked(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
            except Exception as error:
                raise PluginError(
                    f"plugin {entry_point.name!r} ({entry_point.value}) failed to load: "
                    f"{type(error).__name__}: {error}"
                ) from error
            self._pm.register(plugin, name=entry_point.name)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register one more plugin (a module or object with hook implementations)."""
        self._pm.register(plugin, name=name)
        self._pm.check_pending()

    @staticmethod
    def _entry_point_names() -> set[str]:
        from importlib.metadata import entry_points

        return {ep.name for ep in entry_points(group=PROJECT)}

    def backends(self) -> dict[str, Backend]:
        """Every registered backend by name; duplicate names are an error naming both."""
        found: dict[str, Backend] = {}

        def register(backend: object) -> None:
            check_backend(backend)
            name = backend.name  # type: ignore[attr-defined]
            if name in found:
                raise PluginError(f"two plugins register a backend named {name!r}")
            found[name] = backend  # type: ignore[assignment]

        self._pm.hook.convparity_register_backends(register=register)
        return dict(sorted(found.items()))

    def grids(self) -> dict[str, Grid]:
        """Every registered named grid by name."""
        found: dict[str, Grid] = {}

        def register(name: str, cases: Callable, description: str = "") -> None:
            if name in found:
                raise PluginError(f"two plugins register a grid named {name!r}")
            found[name] = Grid(name, description, cases)

        self._pm.hook.convparity_register_grids(register=register)
        return dict(sorted(found.items()))


def get_manager() -> PluginManager:
    """The process-wide manager for the current CONVPARITY_PLUGINS and CONVPARITY_EXTRA_PLUGINS
    (one manager per setting, so changing either variable never reuses a manager built under the other)."""
    return _manager(os.environ.get("CONVPARITY_PLUGINS", ""), os.environ.get("CONVPARITY_EXTRA_PLUGINS", ""))


@cache
def _manager(only: str, extra: str) -> PluginManager:
    names = {n.strip() for n in only.split(",") if n.strip()}
    return PluginManager(names if only else None, tuple(m.strip() for m in extra.split(",") if m.strip()))
