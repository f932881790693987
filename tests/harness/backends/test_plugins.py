"""The plugin manager and the documentation of every hook."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from convparity.harness.backends import hookspecs
from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.backends.manager import PluginError, PluginManager
from tests.stub_backend import StubBackend

DOCS = Path(__file__).resolve().parents[3] / "docs" / "writing-a-backend.md"


def hookspec_names():
    return [name for name, fn in vars(hookspecs).items() if name.startswith("convparity_") and callable(fn)]


@pytest.mark.parametrize("name", hookspec_names())
def test_every_hookspec_has_a_documented_section(name):
    signature = f"{name}({', '.join(inspect.signature(getattr(hookspecs, name)).parameters)})"
    headings = re.findall(r"^#+ `(.+)`$", DOCS.read_text(), flags=re.MULTILINE)
    assert signature in headings, f"docs/writing-a-backend.md needs a section headed `{signature}`"


def contract_members() -> list[str]:
    """`name`, each required method with its parameters, and each optional member, as the docs head them."""
    from dataclasses import fields

    from convparity.harness.backends.contract import (
        OPTIONAL_METHODS,
        REQUIRED_METHODS,
        Backend,
        OptionalMembers,
        OptionalMethods,
    )

    def heading(protocol: type, name: str) -> str:
        return f"{name}({', '.join(list(inspect.signature(getattr(protocol, name)).parameters)[1:])})"

    return ["name", *(heading(Backend, m) for m in REQUIRED_METHODS), *(f.name for f in fields(OptionalMembers)),
            *(heading(OptionalMethods, m) for m in OPTIONAL_METHODS)]


@pytest.mark.parametrize("member", contract_members())
def test_every_contract_member_has_a_documented_section(member):
    headings = re.findall(r"^#+ `(.+)`$", DOCS.read_text(), flags=re.MULTILINE)
    assert member in headings, f"docs/writing-a-backend.md needs a section headed `{member}`"


def test_hookspecs_have_docstrings():
    assert hookspec_names() == ["convparity_register_backends", "convparity_register_grids",
                                "convparity_register_model_readers"]
    for name in hookspec_names():
        assert getattr(hookspecs, name).__doc__.strip()


def test_restriction_loads_only_the_named_plugins():
    manager = PluginManager(only={"reference"})
    assert list(manager.backends()) == ["reference"]
    assert "smoke" in manager.grids()  # built-in grids are core, not subject to the restriction


class TwinPlugin:
    @hookimpl
    def convparity_register_backends(self, register):
        register(StubBackend("reference"))


def test_duplicate_backend_names_are_an_error():
    manager = PluginManager(only={"reference"})
    manager.register(TwinPlugin(), name="twin")
    with pytest.raises(PluginError, match="two plugins register a backend named 'reference'"):
        manager.backends()


class Incomplete:
    name = "half"

    def version(self):
        return "0"


class IncompletePlugin:
    @hookimpl
    def convparity_register_backends(self, register):
        register(Incomplete())


def test_backend_missing_a_member_is_named_and_the_others_still_load():
    manager = PluginManager(only={"reference"})
    manager.register(IncompletePlugin(), name="incomplete")
    assert list(manager.backends()) == ["reference"]
    assert manager.broken["half"] == ("backend 'half': availability is missing or not callable "
                                      "(see docs/writing-a-backend.md)")


class Misspelt:
    @hookimpl
    def convparity_register_backend(self, register):
        register(None)


def test_hook_matching_no_spec_is_rejected():
    manager = PluginManager(only=set())
    with pytest.raises(Exception, match="unknown hook 'convparity_register_backend'"):
        manager.register(Misspelt(), name="misspelt")
