import secrets

from django.core.management.base import BaseCommand

from identity.models import User


class Command(BaseCommand):
    help = "Create (or reset) a demo person for trying the site locally, and print the ID and password."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--email", default="demo@example.org")

    def handle(self, *args, username, email, **options):
        password = "-".join(secrets.token_hex(3) for _ in range(3))
        user, created = User.objects.get_or_create(
            username=username, defaults={"email": email, "first_name": "Demo", "last_name": "Person"}
        )
        user.set_password(password)
        user.save()
        verb = "Created" if created else "Reset the password of"
        self.stdout.write(f"{verb} the demo account.  Institution ID: {username}   Password: {password}")
