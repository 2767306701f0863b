from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from vpn import services


class Command(BaseCommand):
    help = "Create a Duo-style integration for a VPN or proxy and print its keys once (audited)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--networks", default="", help="Allowed client networks, comma-separated CIDRs.")

    def handle(self, *args, name, networks, **options):
        try:
            integration, secret = services.create_integration(name=name, allowed_networks=networks, actor=None)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(f"integration key: {integration.integration_key}")
        self.stdout.write(f"secret key:      {secret}")
        self.stdout.write("The secret key is shown only now; rotate it in the admin if it is lost.")
