"""What the desk's management commands share: the person, the agent running it and the identity check, as the
admin's action page asks for them (BND-07)."""

from django.core.management.base import BaseCommand

from helpdesk.models import IdentityCheck


class DeskCommand(BaseCommand):
    by_help = "institution ID of the help-desk agent running it"

    def add_arguments(self, parser):
        parser.add_argument("institution_id", help="the person's institution ID")
        parser.add_argument("--by", required=True, help=self.by_help)
        parser.add_argument(
            "--method", required=True, choices=sorted(IdentityCheck.Method.values), help="how identity was checked"
        )
        parser.add_argument("--reference", required=True, help="ticket or case reference of the identity check")
