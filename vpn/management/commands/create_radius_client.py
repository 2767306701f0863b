from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from vpn import services


class Command(BaseCommand):
    help = (
        "Create a RADIUS client (a VPN concentrator's network) and print its shared secret once (audited). A "
        "request is answered by the client with the most specific network holding its address; a network another "
        "enabled client has is refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("network", help="The client's address or network, e.g. 10.0.0.5/32.")
        parser.add_argument(
            "--limit-proxy-state",
            action="store_true",
            help="For a VPN that cannot send Message-Authenticator (OpenVPN's radiusplugin): accept requests without "
            "it when they carry no Proxy-State. Weakens the Blast-RADIUS defence; the default requires it.",
        )

    def handle(self, *args: Any, name: str, network: str, limit_proxy_state: bool, **options: Any) -> None:
        choice = "limit_proxy_state" if limit_proxy_state else "require"
        try:
            client, secret = services.create_radius_client(
                name=name, network=network, message_authenticator=choice, actor=None
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(f"RADIUS client {client.name} for {client.network}")
        self.stdout.write(f"shared secret: {secret}")
        self.stdout.write("The shared secret is shown only now; rotate it in the admin if it is lost.")
        for sentence in services.radius_overlaps(client):
            self.stdout.write(sentence)
        if limit_proxy_state:
            self.stdout.write(
                "WARNING: requests without Message-Authenticator are accepted when they carry no Proxy-State "
                "(limit_proxy_state). Require it once the VPN can send one."
            )
