"""``identity`` (the people service included) imports no other app of ours: what it needs of ``devices`` comes through
the hooks ``devices`` registers (``identity.directory.hooks``). Read from the source, imports inside functions too."""

import ast
from pathlib import Path

IDENTITY = Path(__file__).resolve().parents[2]
OTHER_APPS = {"devices", "helpdesk", "vpn", "reports", "campaigns"}


def test_identity_imports_no_other_app_of_ours():
    found = []
    for path in IDENTITY.rglob("*.py"):
        if {"tests", "migrations"} & set(path.relative_to(IDENTITY).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            found += [f"{path.relative_to(IDENTITY)}: {name}" for name in names if name.split(".")[0] in OTHER_APPS]
    assert found == []
