"""The import rules for the top-level modules, which import-linter cannot check.

import-linter takes packages only as roots, so pyproject.toml's contracts cover ``mailer``,
``providers`` and ``devkit``; the entry points and the models are single files beside them. This
reads their imports (those inside functions too) and holds them to the same rules: the runtime
never imports the development tools, and the models, the bottom layer, import no other part of
the service.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_FILES = ("app.py", "mail_service.py", "wsgi.py", "models.py")
SERVICE_PACKAGES = ("mailer", "providers", "devkit", "app", "mail_service", "wsgi")


def imported_modules(source):
    """Every module name an ``import`` or ``from … import`` in ``source`` names (absolute only)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def under(name, packages):
    """Whether the module ``name`` is one of ``packages`` or inside one of them."""
    return any(name == package or name.startswith(package + ".") for package in packages)


def test_imported_modules_reads_nested_and_from_imports():
    source = "import os\ndef f():\n    from devkit.sandbox import Sandbox\n"
    assert imported_modules(source) == {"os", "devkit.sandbox"}


@pytest.mark.parametrize("filename", RUNTIME_FILES)
def test_runtime_does_not_import_devkit(filename):
    names = imported_modules((ROOT / filename).read_text())
    assert not [name for name in names if under(name, ("devkit",))]


def test_models_import_no_other_part_of_the_service():
    names = imported_modules((ROOT / "models.py").read_text())
    assert not [name for name in names if under(name, SERVICE_PACKAGES)]
