from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from vpn import services


class Command(BaseCommand):
    help = (
        "Create a Duo-style integration for a VPN or proxy and print what to enter in it: the API hostname and the "
        "keys, shown once (audited)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--networks", default="", help="Allowed client networks, comma-separated CIDRs.")

    def handle(self, *args: Any, name: str, networks: str, **options: Any) -> None:
        try:
            integration, secret = services.create_integration(name=name, allowed_networks=networks, actor=None)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        # The VPN reaches the Auth API where people reach the site; emailed links use the same SITE_URL.
        site = urlsplit(settings.SITE_URL)
        self.stdout.write(f"API hostname:    {site.hostname}")
        if site.port:
            self.stdout.write(f"API port:        {site.port} (a VPN with no port setting connects to 443)")
        if site.scheme != "https":
            self.stdout.write("SITE_URL is not https: VPNs and duo_client connect over HTTPS (see docs/vpn.md).")
        self.stdout.write(f"integration key: {integration.integration_key}")
        self.stdout.write(f"secret key:      {secret}")
        self.stdout.write("The secret key is shown only now; rotate it in the admin if it is lost.")
