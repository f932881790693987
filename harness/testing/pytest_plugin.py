"""The convparity pytest plugin (entry point `pytest11`): a backend's contract checks and a grid's
cases as ordinary test items.

    pytest --convparity-backend mine --convparity-grid resnet50 --convparity-dtype float32 -n 2

For each `--convparity-backend NAME` (repeatable) it adds the contract checks of
convparity.harness.testing.checks and one `test_agrees_with_reference[...]` item per case x dtype of the
`--convparity-grid` grids (repeatable: named grids, TOML or batch files; default smoke) in the
`--convparity-dtype` dtypes (repeatable; default float64 and float32), with the case's descriptor as
its id: the same items as a `BackendContract` subclass, without writing one. Node ids read
`convparity[NAME]::test_agrees_with_reference[g1mb2ic3iw9oc4...-float32]`, so `-k`, `--lf` and
pytest-xdist's `-n` work on them as on any test. A failing case shows which tensors failed and the
repro command; an unsupported case is skipped, a declared deviation is an xfail.

Without `--convparity-backend` the plugin adds nothing and changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the harness is imported only when the options are given
    from convparity.harness.backends.contract import Backend
    from convparity.harness.cases.descriptor import Case

DEFAULT_GRIDS = ("smoke",)
DEFAULT_DTYPES = ("float64", "float32")
_CASES = pytest.StashKey["list[Case]"]()
_BACKENDS = pytest.StashKey["dict[str, Backend]"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("convparity", "convparity backend checks")
    group.addoption("--convparity-backend", action="append", default=[], metavar="NAME",
                    help="add the contract checks and the grid's cases of this registered backend as test items "
                         "(repeat for several)")
    group.addoption("--convparity-grid", action="append", default=[], metavar="GRID",
                    help="named grid, TOML grid or benchdnn batch file whose cases become items "
                         f"(repeat; default {', '.join(DEFAULT_GRIDS)})")
    group.addoption("--convparity-dtype", action="append", default=[], metavar="DTYPE",
                    help=f"dtype of the case items (repeat; default {', '.join(DEFAULT_DTYPES)})")
    group.addoption("--convparity-seed", type=int, default=0, metavar="N", help="seed of the inputs (default 0)")


def pytest_configure(config: pytest.Config) -> None:
    """Check the options and read the grids now: a bad option is a usage error naming it, before anything runs."""
    backends = config.getoption("convparity_backend")
    grids = config.getoption("convparity_grid")
    dtypes = config.getoption("convparity_dtype")
    if not backends:
        if grids or dtypes:
            given = "--convparity-grid" if grids else "--convparity-dtype"
            raise pytest.UsageError(f"{given} needs --convparity-backend NAME")
        return
    from convparity.harness.backends.manager import get_manager
    from convparity.harness.cases.grids import GridError
    from convparity.harness.testing.checks import grid_cases
    from convparity.harness.vocabulary import check_dtype

    for dtype in dtypes:
        try:
            check_dtype(dtype)
        except ValueError as error:
            raise pytest.UsageError(f"--convparity-dtype: {error}") from None
    manager = get_manager()
    known = manager.backends()
    for name in backends:
        if name not in known and name not in manager.broken:  # a broken one's items fail, saying why
            raise pytest.UsageError(f"--convparity-backend: no backend {name!r} is registered "
                                    f"(registered: {', '.join(known) or 'none'})")
    try:
        config.stash[_CASES] = grid_cases(grids or DEFAULT_GRIDS, dtypes or DEFAULT_DTYPES)
    except GridError as error:
        raise pytest.UsageError(f"--convparity-grid: {error}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Append each backend's items before -k, -m and --lf select among the collected items."""
    if _CASES not in config.stash:
        return
    for name in dict.fromkeys(config.getoption("convparity_backend")):
        collector = BackendItems.from_parent(session, name=f"convparity[{name}]", nodeid=f"convparity[{name}]",
                                             backend_name=name)
        items.extend(collector.collect())


class BackendItems(pytest.Collector):
    """The items of one backend: the contract checks, then one per case x dtype."""

    def __init__(self, *, backend_name: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backend_name = backend_name

    def collect(self) -> list[pytest.Item]:  # type: ignore[override]
        from convparity.harness.testing.checks import CASE_TEST, CONTRACT_CHECKS, case_id

        cases = self.config.stash[_CASES]
        items: list[pytest.Item] = [ContractItem.from_parent(self, name=name, backend_name=self.backend_name)
                                    for name in CONTRACT_CHECKS]
        items += [CaseItem.from_parent(self, name=f"{CASE_TEST}[{case_id(case)}]", backend_name=self.backend_name,
                                       case=case) for case in cases]
        return items


class _BackendItem(pytest.Item):
    def __init__(self, *, backend_name: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backend_name = backend_name

    @property
    def seed(self) -> int:
        return int(self.config.getoption("convparity_seed"))

    def reportinfo(self) -> tuple[Path, None, str]:
        return self.path, None, f"convparity backend {self.backend_name}: {self.name}"


class ContractItem(_BackendItem):
    """One contract check of convparity.harness.testing.checks, run on the grid's cases."""

    def runtest(self) -> None:
        from convparity.harness.testing.checks import CONTRACT_CHECKS

        cases: list[Case] = self.config.stash[_CASES]
        CONTRACT_CHECKS[self.name](self.backend_name, cases, self.seed)


class CaseItem(_BackendItem):
    """One case x dtype through the one evaluation path: pass, skip (unsupported), xfail (declared) or fail."""

    def __init__(self, *, case: Case, **kwargs) -> None:
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        from convparity.harness.testing.checks import check_case

        check_case(self.backend(), self.case, self.seed)

    def backend(self) -> Backend:
        """One backend object per name and session, as a BackendContract class keeps one (skips when unavailable)."""
        from convparity.harness.testing.checks import usable_backend

        backends = self.config.stash.setdefault(_BACKENDS, {})
        if self.backend_name not in backends:
            backends[self.backend_name] = usable_backend(self.backend_name)
        return backends[self.backend_name]
