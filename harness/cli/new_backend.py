"""`convparity new-backend NAME`: a backend plugin package to fill in, from the template."""

from __future__ import annotations

import argparse

from convparity.harness.plugin_template.render import new_backend


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "new-backend", help="create a backend plugin package convparity-NAME from the template",
        description="Render the plugin template into a package convparity-NAME: the backend (a NumPy convolution "
        "to replace with your framework's), its limits and known deviations, the contract suite as its tests, "
        "tox.ini, a README and a CI workflow.")
    parser.add_argument("name", metavar="NAME", help="backend name: lower-case letters, digits and dashes")
    parser.add_argument("--dir", help="folder to create, absent or empty (default ./convparity-NAME)")
    parser.add_argument("--framework", metavar="PKG", help="the framework's PyPI package the backend wraps "
                        "(a dependency, imported by availability())")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    path = new_backend(args.name, directory=args.dir, framework=args.framework)
    print(f"created {path}; next:")
    print(f"  pip install -e '{path}[test]'")
    print(f"  cd {path} && pytest   # the contract suite")
    print("  convparity backends   # lists the new backend")
    return 0
