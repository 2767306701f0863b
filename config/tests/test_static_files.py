"""The site's stylesheets and scripts are served in production: with DEBUG off WhiteNoise serves only STATIC_ROOT, so
the web unit collects them there before it starts, and what it collects is what the pages ask for."""

import shlex
from pathlib import Path

from django.core.management import call_command
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parents[2]
WEB_UNIT = ROOT / "deploy" / "enrollment-web.service"
# The stylesheet every page links and the script that adds and uses security keys and passkeys.
SERVED = ["/static/css/site.css", "/static/js/webauthn.js"]


def _manage_commands(unit: Path) -> list[list[str]]:
    """The manage.py commands (with their arguments) the unit runs before it serves."""
    commands = []
    for line in unit.read_text(encoding="utf-8").splitlines():
        if line.startswith("ExecStartPre="):
            words = shlex.split(line.removeprefix("ExecStartPre="))
            if "manage.py" in words:
                commands.append(words[words.index("manage.py") + 1 :])
    return commands


def _statuses(static_root: Path) -> dict[str, int]:
    with override_settings(DEBUG=False, STATIC_ROOT=static_root):
        client = Client()  # a new handler: WhiteNoise reads STATIC_ROOT when the middleware is built
        return {url: client.get(url).status_code for url in SERVED}


def test_without_collected_files_production_serves_no_stylesheet_or_script(tmp_path):
    assert set(_statuses(tmp_path).values()) == {404}


def test_the_web_unit_collects_the_static_files_production_serves(tmp_path):
    collect = [words for words in _manage_commands(WEB_UNIT) if words[0] == "collectstatic"]
    assert collect, "the web unit does not collect the static files before it serves"
    with override_settings(STATIC_ROOT=tmp_path):
        call_command(*collect[0], verbosity=0)
    assert _statuses(tmp_path) == dict.fromkeys(SERVED, 200)
