"""Audit sentences are read by people (the person page, the audit log): no reason a service writes as a code word
(``scim_delete``) reaches them as that code."""

import ast
import re
from pathlib import Path

from identity import events
from identity.directory.scim import resources
from identity.directory.sync import LEFT

ROOT = Path(__file__).resolve().parents[2]
APPS = ("config", "identity", "devices", "helpdesk", "reports", "vpn", "campaigns")
CODE_WORD = re.compile(r"\b[a-z]+_[a-z_]+\b")
# Detail values that are whole-word answers of one door, which a sentence is allowed to show as they are.
SCIM_REFUSALS = ("network", "disabled")


def reasons_written() -> set[str]:
    """Every reason the project's code writes as a literal: ``reason="..."`` and ``{"reason": "..."}``."""
    found: set[str] = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "tests" in path.parts or "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.keyword) and node.arg == "reason":
                    value = node.value
                elif isinstance(node, ast.Dict):
                    pairs = zip(node.keys, node.values, strict=True)
                    value = next((v for k, v in pairs if isinstance(k, ast.Constant) and k.value == "reason"), None)
                else:
                    continue
                branches = [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]
                for branch in branches:
                    if isinstance(branch, ast.Constant) and isinstance(branch.value, str):
                        found.add(branch.value)
    return found


def test_the_scan_finds_the_reasons_it_is_about():
    assert {"directory_retention", "expired", "not_in_use"} <= reasons_written()


def test_no_event_sentence_shows_a_reason_as_a_code_word():
    reasons = reasons_written() | {resources.DELETED, LEFT, *SCIM_REFUSALS}
    # A deactivation ends VPN access with the reason "deactivated: <the deactivation's reason>".
    reasons |= {f"deactivated: {reason}" for reason in set(reasons)}
    with_reason = [action for action, template in events.EVENTS.items() if "{reason}" in template]
    assert "directory.person_deactivated" in with_reason and "directory.scim_refused" in with_reason
    shown = {
        (action, reason): events.describe(action, {"reason": reason}) for action in with_reason for reason in reasons
    }
    raw = {key: sentence for key, sentence in shown.items() if CODE_WORD.search(sentence)}
    assert raw == {}
    assert events.describe("directory.scim_refused", {"reason": "network"}) == (
        "A SCIM request was refused: it came from an address outside the client's networks"
    )
