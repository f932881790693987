"""`convparity new-backend`: renders the plugin template (a Copier template, copier.yml beside this
module) into a package `convparity-NAME` that passes the contract suite as generated.

    from convparity.harness.plugin_template.render import new_backend
    path = new_backend("my-conv", framework="torch")   # ./convparity-my-conv

The name is normalised the way package indexes compare names (lower case, runs of `-`, `_` and `.`
become one `-`; a leading `convparity-` is dropped) and must then be lower-case letters,
digits and single dashes, starting with a letter: it is the backend's name, the entry point's and,
with `convparity-` before it, the distribution's (`convparity_my_conv` is the import package).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from convparity.harness.errors import ConvparityError
from convparity.harness.inert_text import abbreviated

TEMPLATE = Path(__file__).resolve().parent
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
MAX_NAME = 60  # the package folder, distribution and module names grow from it; file names have limits
# PEP 508 distribution names (https://packaging.python.org/en/latest/specifications/name-normalization/)
DISTRIBUTION_PATTERN = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9]", re.IGNORECASE)
INSTALL_COPIER = "pip install 'convparity[template]'"


class TemplateError(ConvparityError, ValueError):
    """A backend that cannot be generated as asked; one line naming the argument (NAME, --dir, --framework)."""


def backend_name(name: str) -> str:
    """`name` normalised (see the module docstring); TemplateError naming NAME when it is not a valid name."""
    normalised = re.sub(r"[-_.]+", "-", str(name).strip().lower()).removeprefix("convparity-")
    if not NAME_PATTERN.fullmatch(normalised):
        raise TemplateError(f"NAME {abbreviated(name)} is not a backend name: use lower-case letters, digits and "
                            "single dashes, starting with a letter (e.g. my-conv)")
    if len(normalised) > MAX_NAME:
        raise TemplateError(f"NAME {abbreviated(name)} is {len(normalised)} characters long: at most {MAX_NAME}")
    return normalised


def framework_module(framework: str) -> str:
    """The import name of the distribution `framework`: read from its metadata when it is installed
    (tensorflow-cpu -> tensorflow), else the distribution's name with dashes as underscores."""
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    wanted = canonicalize_name(framework)
    modules = sorted(module for module, distributions in packages_distributions().items()
                     if not module.startswith("_") and wanted in {canonicalize_name(d) for d in distributions})
    same = [m for m in modules if canonicalize_name(m) == wanted]
    return (same or modules or [wanted.replace("-", "_")])[0]


def new_backend(name: str, directory: str | Path | None = None, framework: str | None = None) -> Path:
    """Render the template for backend `name` into `directory` (default ./convparity-NAME) and return it.

    `framework`: the PyPI distribution the backend wraps (a dependency; `availability` imports it);
    None for a NumPy-only backend. TemplateError (one line naming the argument) for a bad name, a
    name some installed plugin already registers, a target folder that exists and is not empty, or
    a missing Copier.
    """
    backend = backend_name(name)
    if framework is not None and not DISTRIBUTION_PATTERN.fullmatch(framework.strip()):
        raise TemplateError(f"--framework {framework!r} is not a package name on the index (letters, digits, "
                            "'.', '_', '-')")
    _check_unregistered(backend)
    target = Path(directory) if directory is not None else Path.cwd() / f"convparity-{backend}"
    if target.resolve().is_relative_to(TEMPLATE):
        raise TemplateError(f"--dir {str(target)!r} is inside convparity's own template folder {TEMPLATE}: "
                            "choose a folder outside it")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise TemplateError(f"--dir {str(target)!r} exists and is not an empty folder: choose another")
    try:
        from copier import run_copy
    except ImportError:
        raise TemplateError(f"convparity new-backend needs Copier: {INSTALL_COPIER}") from None
    from convparity.harness import __version__

    framework = (framework or "").strip()
    answers = {"name": backend, "framework": framework, "convparity_requirement": f"convparity>={__version__}"}
    if framework:
        answers["framework_module"] = framework_module(framework)
    existed = target.exists()
    try:
        run_copy(str(TEMPLATE), target, data=answers, defaults=True, quiet=True, unsafe=False)
    except OSError as error:  # a read-only or full disk: leave no half package behind
        if not existed:
            shutil.rmtree(target, ignore_errors=True)
        raise TemplateError(f"--dir {str(target)!r}: cannot write the package: {error.strerror or error}") from None
    return target


def _check_unregistered(backend: str) -> None:
    """TemplateError when an installed plugin already registers a backend of this name (two could not load)."""
    from convparity.harness.backends.manager import get_manager

    manager = get_manager()
    if backend in manager.backends() or backend in manager.broken:
        raise TemplateError(f"NAME {backend!r}: a backend of that name is already registered "
                            "(convparity backends lists it); choose another name")
