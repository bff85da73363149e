"""The kernel core stands alone, and the public surface is exactly ``__all__``."""

from __future__ import annotations

import ast
import importlib
import pathlib

import sipkernel

PACKAGE = pathlib.Path(sipkernel.__file__).parent
CORE = PACKAGE / "_core"


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(relative level, module) for every import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
        elif isinstance(node, ast.Import):
            found.extend((0, alias.name) for alias in node.names)
    return found


def test_the_core_imports_nothing_of_sipkernel_outside_itself() -> None:
    offenders = []
    for path in sorted(CORE.glob("*.py")):
        for level, module in _imports(path):
            if level >= 2 or module.startswith("sipkernel"):
                offenders.append(f"{path.name}: {'.' * level}{module}")
    assert offenders == []


def test_the_core_names_no_domain_kind() -> None:
    kinds = ('"local"', '"process"', '"sandbox"', '"wasm"', '"remote"')
    offenders = []
    for path in sorted(CORE.glob("*.py")):
        text = path.read_text()
        offenders += [f"{path.name}: {kind}" for kind in kinds if kind in text]
    # The kernel's default domain is the one exception: spawn() without a domain
    # runs in the shared domain of the kind registered as "local".
    assert offenders == ['_kernel.py: "local"']


def test_domain_kinds_use_only_the_cores_modules_not_each_others() -> None:
    domains = PACKAGE / "domains"
    offenders = []
    for path in sorted(domains.glob("*.py")):
        for level, module in _imports(path):
            if level == 2 and module and not module.startswith("_core"):
                offenders.append(f"{path.name}: ..{module}")
    assert offenders == []


def test_every_public_name_exists_and_is_documented() -> None:
    assert sorted(sipkernel.__all__) == list(sipkernel.__all__)
    for name in sipkernel.__all__:
        obj = getattr(sipkernel, name)
        if callable(obj) and not isinstance(obj, str):
            assert obj.__doc__, f"{name} has no docstring"


def test_no_public_name_leaks_beyond_all() -> None:
    public = {n for n in vars(sipkernel) if not n.startswith("_")}
    modules = {n for n in public if isinstance(getattr(sipkernel, n), type(importlib))}
    assert public - modules - set(sipkernel.__all__) == set()
