from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from vpn import services


class Command(BaseCommand):
    help = "Create a RADIUS client (a VPN concentrator's network) and print its shared secret once (audited)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("network", help="The client's address or network, e.g. 10.0.0.5/32.")

    def handle(self, *args, name, network, **options):
        try:
            client, secret = services.create_radius_client(name=name, network=network, actor=None)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(f"RADIUS client {client.name} for {client.network}")
        self.stdout.write(f"shared secret: {secret}")
        self.stdout.write("The shared secret is shown only now; rotate it in the admin if it is lost.")
