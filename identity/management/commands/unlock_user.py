import getpass

from django.core.management.base import BaseCommand, CommandError

from identity import services
from identity.models import User


class Command(BaseCommand):
    help = (
        "Unlock a person locked out after too many wrong codes, or whose last device was reported lost "
        "(audited). The help desk's Unlock button does the same."
    )

    def add_arguments(self, parser):
        parser.add_argument("institution_id")
        parser.add_argument("--reason", required=True, help="Why, e.g. the ticket number and how identity was checked.")
        parser.add_argument("--by", help="Institution ID of the staff member running this (default: the OS user).")

    def handle(self, *args, institution_id, reason, by=None, **options):
        user = User.objects.filter(username=institution_id).first()
        if user is None:
            raise CommandError(f"no person with ID {institution_id!r}")
        actor = User.objects.filter(username=by).first() if by else None
        if by and actor is None:
            raise CommandError(f"no staff member with ID {by!r}")
        ran_by = by or getpass.getuser()
        services.unlock_user(user, actor=actor, reason=f"{reason} (command run by {ran_by})")
        self.stdout.write(self.style.SUCCESS(f"{institution_id} unlocked"))
