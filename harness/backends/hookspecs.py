"""The hooks a convparity plugin can implement (pluggy project "convparity").

A plugin is a module (or object) with functions marked `@hookimpl`; it is found through the
`convparity` entry-point group. Every hook is called once, when the plugin manager is first
built, and takes a `register` callback.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("convparity")
hookimpl = pluggy.HookimplMarker("convparity")


@hookspec
def convparity_register_backends(register: Callable[[object], None]) -> None:
    """Register backends: call `register(backend)` once per backend object
    (see convparity.harness.backends.contract)."""


@hookspec
def convparity_register_grids(register: Callable[..., None]) -> None:
    """Register named grids: call `register(name, cases, description)` with a callable returning Cases."""


@hookspec
def convparity_register_model_readers(register: Callable[[object], None]) -> None:
    """Register model readers: call `register(reader)` once per reader object, which turns a model source (a file,
    a name) into its convolution layers (see convparity.harness.backends.model_readers)."""
