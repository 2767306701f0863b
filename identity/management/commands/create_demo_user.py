from django.core.management.base import BaseCommand

from .run_demo import reset_demo_account


class Command(BaseCommand):
    help = "Create (or reset) a demo person for trying the site locally, and print the ID and password."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--email", default="demo@example.org")

    def handle(self, *args, username, email, **options):
        _, password, created = reset_demo_account(username, email)
        verb = "Created" if created else "Reset the password of"
        self.stdout.write(f"{verb} the demo account.  Institution ID: {username}   Password: {password}")
