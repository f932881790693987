"""The one place that talks to pluggy: loads plugins and collects what they register.

Plugins come from the `convparity` entry-point group; the built-in ones are also imported from
BUILTIN_PLUGINS when the project is used without being installed. `CONVPARITY_PLUGINS=a,b` restricts
loading to the named plugins (entry-point names). `CONVPARITY_TRACE_HOOKS=1` prints every hook call.
`CONVPARITY_EXTRA_PLUGINS=pkg.module,...` also registers those modules by import path (a plugin tried
without packaging it, or the test suite's misbehaving backends). Both settings are read once, into a
`PluginSelection` that sweep tasks carry to their workers.

A plugin that fails to import, or registers a backend that breaks the contract, does not stop the
others: it is kept in `broken` with the reason, and `convparity backends` lists it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import pluggy

from convparity.harness.backends import hookspecs
from convparity.harness.backends.contract import Backend, BackendContractError, check_backend
from convparity.harness.backends.model_readers import ModelReader, ModelReaderContractError, check_model_reader
from convparity.harness.cases.grids import Grid
from convparity.harness.errors import ConvparityError

PROJECT = "convparity"
BUILTIN_PLUGINS = {
    "reference": "convparity.plugins.reference_backend",
    "torch": "convparity.plugins.torch_backend",
    "tensorflow": "convparity.plugins.tensorflow_backend",
    "tflite": "convparity.plugins.tflite_backend",
    "jax": "convparity.plugins.jax_backend",
    "onnxruntime": "convparity.plugins.onnxruntime_backend",
    "keras": "convparity.plugins.keras_backend",
    "torch-inductor": "convparity.plugins.torch_inductor_backend",
    "torch-quantized": "convparity.plugins.torch_quantized_backend",
    "openvino": "convparity.plugins.openvino_backend",
    "paddle": "convparity.plugins.paddle_backend",
    "mlx": "convparity.plugins.mlx_backend",
    "tinygrad": "convparity.plugins.tinygrad_backend",
    "iree": "convparity.plugins.iree_backend",
    "tvm": "convparity.plugins.tvm_backend",
    # Model readers (`--model`): one plugin per framework, like the backends.
    "onnx-models": "convparity.plugins.onnx_models",
    "keras-models": "convparity.plugins.keras_models",
    "torch-models": "convparity.plugins.torch_models",
}
CORE_PLUGINS = {"grids": "convparity.harness.cases.builtin_grids"}


class PluginError(ConvparityError):
    """A plugin setting that cannot be honoured (an extra module that does not import, a duplicate name)."""


def _describe(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


class PluginManager:
    """Wraps pluggy's manager with one typed method per hook.

    `broken` maps a plugin (or backend) name to why it could not be used: it failed to import, its
    hook raised, or it registered a backend that breaks the contract. The rest load as usual.
    """

    def __init__(self, only: set[str] | None = None, extra: tuple[str, ...] = ()) -> None:
        """`only`: load just these plugins (entry-point names); `extra`: also import these modules."""
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.broken: dict[str, str] = {}
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
            if self._pm.get_plugin(name) is None and not self._pm.is_blocked(name) and name not in self.broken:
                try:
                    self._pm.register(importlib.import_module(module), name=name)
                except ModuleNotFoundError as error:
                    if error.name != module:
                        self.broken[name] = f"plugin module {module} failed to import: {_describe(error)}"
                except Exception as error:  # noqa: BLE001 - a broken plugin must not stop the others
                    self.broken[name] = f"plugin module {module} failed to import: {_describe(error)}"
        for module in extra:
            try:
                plugin = importlib.import_module(module)
            except Exception as error:  # noqa: BLE001
                raise PluginError(f"CONVPARITY_EXTRA_PLUGINS: cannot import {module!r}: {_describe(error)}") from None
            self._pm.register(plugin, name=module)
        self._pm.check_pending()

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for entry_point in entry_points(group=PROJECT):
            if self._pm.get_plugin(entry_point.name) is not None or self._pm.is_blocked(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
            except Exception as error:  # noqa: BLE001 - a broken plugin must not stop the others
                self.broken[entry_point.name] = f"plugin {entry_point.value} failed to load: {_describe(error)}"
                continue
            self._pm.register(plugin, name=entry_point.name)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register one more plugin (a module or object with hook implementations)."""
        self._pm.register(plugin, name=name)
        self._pm.check_pending()

    @staticmethod
    def _entry_point_names() -> set[str]:
        from importlib.metadata import entry_points

        return {ep.name for ep in entry_points(group=PROJECT)}

    def _call_each(self, hook_name: str, register: Callable[..., None]) -> None:
        """Call every plugin's implementation of a registration hook on its own: one that raises is
        recorded in `broken` and the others still register."""
        for implementation in getattr(self._pm.hook, hook_name).get_hookimpls():
            try:
                implementation.function(register=register)
            except PluginError:
                raise
            except Exception as error:  # noqa: BLE001
                self.broken[implementation.plugin_name] = f"{hook_name} raised {_describe(error)}"

    def _registered(self, hook_name: str, check: Callable[[object], None], refused: type[Exception],
                    what: str) -> dict[str, Any]:
        """Every usable object a registration hook registers, by name, in registration order: one its contract
        `check` refuses is recorded in `broken` with why; a duplicate name is a PluginError naming it."""
        found: dict[str, Any] = {}

        def register(item: object) -> None:
            try:
                check(item)
            except refused as error:
                self.broken[str(getattr(item, "name", item))] = str(error)
                return
            name = item.name  # type: ignore[attr-defined]
            if name in found:
                raise PluginError(f"two plugins register a {what} named {name!r}")
            found[name] = item

        self._call_each(hook_name, register)
        return found

    def backends(self) -> dict[str, Backend]:
        """Every usable registered backend by name; a duplicate name is a PluginError naming it."""
        return dict(sorted(self._registered("convparity_register_backends", check_backend, BackendContractError,
                                            "backend").items()))

    def grids(self) -> dict[str, Grid]:
        """Every registered named grid by name."""
        found: dict[str, Grid] = {}

        def register(name: str, cases: Callable, description: str = "") -> None:
            if name in found:
                raise PluginError(f"two plugins register a grid named {name!r}")
            found[name] = Grid(name, description, cases)

        self._call_each("convparity_register_grids", register)
        return dict(sorted(found.items()))


    def model_readers(self) -> dict[str, ModelReader]:
        """Every usable registered model reader by name, in registration order (the first that claims a source
        reads it); a duplicate name is a PluginError naming it."""
        return self._registered("convparity_register_model_readers", check_model_reader, ModelReaderContractError,
                                "model reader")


@dataclass(frozen=True)
class PluginSelection:
    """Which plugins load: `only` these entry-point names (None: all), plus `extra` modules by import path.

    Picklable, so a sweep's tasks carry it to workers anywhere; `from_environment()` reads
    CONVPARITY_PLUGINS and CONVPARITY_EXTRA_PLUGINS once, in the process that starts the sweep.
    """

    only: tuple[str, ...] | None = None
    extra: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls) -> PluginSelection:
        only = os.environ.get("CONVPARITY_PLUGINS", "")
        extra = os.environ.get("CONVPARITY_EXTRA_PLUGINS", "")
        return cls(tuple(sorted({n.strip() for n in only.split(",") if n.strip()})) if only else None,
                   tuple(m.strip() for m in extra.split(",") if m.strip()))

    def manager(self) -> PluginManager:
        """The process-wide manager for this selection (built once per selection and process)."""
        return _manager(self)


def get_manager() -> PluginManager:
    """The process-wide manager for the current CONVPARITY_PLUGINS and CONVPARITY_EXTRA_PLUGINS
    (one manager per setting, so changing either variable never reuses a manager built under the other)."""
    return PluginSelection.from_environment().manager()


@cache
def _manager(selection: PluginSelection) -> PluginManager:
    return PluginManager(set(selection.only) if selection.only is not None else None, selection.extra)
