from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import transaction

from helpdesk import services
from helpdesk.management.desk_command import DeskCommand
from identity.models import User


class Command(DeskCommand):
    help = (
        "Email a person with no working factor a single-use link to set up their authenticator app again "
        "(audited), as the desk's action does: the identity check is recorded first."
    )

    by_help = "institution ID of the staff member sending it"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--approved-by",
            default="",
            help="institution ID of a second agent who may approve requests and send links: needed for a staff account "
            "or a freshly changed email",
        )

    def handle(self, *args, institution_id, by, method, reference, approved_by="", **options):
        person = User.objects.filter(username=institution_id).first()
        actor = User.objects.filter(username=by, is_staff=True).first()
        if person is None:
            raise CommandError(f"no person with ID {institution_id!r}")
        if actor is None:
            raise CommandError(f"no staff member with ID {by!r}")
        approver = User.objects.filter(username=approved_by, is_staff=True).first() if approved_by else None
        if approved_by and approver is None:
            raise CommandError(f"no staff member with ID {approved_by!r}")
        try:
            # One transaction: a refused link leaves no identity check behind that nothing relied on.
            with transaction.atomic():
                check = services.record_identity_check(person, actor=actor, method=method, reference=reference)
                link = services.send_reactivation_link(person, actor=actor, approved_by=approver, identity_check=check)
        except ValidationError as error:
            raise CommandError(error.messages[0]) from error
        self.stdout.write(self.style.SUCCESS(f"recovery link #{link.pk} emailed to {institution_id}"))
