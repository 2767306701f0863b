"""``make run``: the development server, with the demo account's ID and password printed last, framed."""

import os
import secrets

from django.conf import settings
from django.contrib.staticfiles.management.commands.runserver import Command as RunserverCommand
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django.utils.module_loading import import_string

from identity.models import User

# The server process the autoreloader restarts gets the password from its parent, which set it once.
DEMO_PASSWORD_ENV = "DEMO_ACCOUNT_PASSWORD"


def reset_demo_account(username: str = "demo", email: str = "demo@example.org") -> tuple[User, str, bool]:
    """Create the demo person, or give them a new password; return them, the password and whether they are new."""
    password = "-".join(secrets.token_hex(3) for _ in range(3))
    user, created = User.objects.get_or_create(
        username=username, defaults={"email": email, "first_name": "Demo", "last_name": "Person"}
    )
    user.set_password(password)
    user.save()
    return user, password, created


def framed(lines: list[str]) -> str:
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 4) + "+"
    return "\n".join([rule, *(f"|  {line.ljust(width)}  |" for line in lines), rule])


class Command(RunserverCommand):
    help = (
        "Run the development server for trying the site: reset the demo account, then print its ID and password "
        "and the address to open, last, after the server's own lines."
    )

    def handle(self, *args, **options):
        if os.environ.get(DJANGO_AUTORELOAD_ENV) != "true" and DEMO_PASSWORD_ENV not in os.environ:
            _, password, _ = reset_demo_account()
            os.environ[DEMO_PASSWORD_ENV] = password
        super().handle(*args, **options)

    def on_bind(self, server_port):
        super().on_bind(server_port)
        lines = [
            f"Open {settings.SITE_URL.rstrip('/')}/ in your browser and sign in with the demo account:",
            "",
            "    Institution ID:  demo",
            f"    Password:        {os.environ.get(DEMO_PASSWORD_ENV, '(unchanged)')}",
            "",
        ]
        # Whichever gateway the setting names says whether it prints here; identity does not know the classes.
        if getattr(import_string(settings.PHONE_GATEWAY), "prints_messages_here", False):
            lines.append("Texts and calls are not sent: they are printed here (development only).")
        if "console" in settings.EMAIL_BACKEND:
            lines.append("Emails (activation links) are printed here too.")
        self.stdout.write("\n" + framed(lines) + "\n")
