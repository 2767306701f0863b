from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import transaction

from helpdesk import services
from helpdesk.actions import ACTIONS
from helpdesk.management.desk_command import DeskCommand
from identity import services as identity_services
from identity.models import User


class Command(DeskCommand):
    help = (
        "Unlock a person locked out after too many wrong codes, or lift the hold on setting up a new device after "
        "their last one was reported lost (audited), as the desk's Unlock action does: the identity check is "
        "recorded first. Run by a help-desk agent allowed to unlock, never on their own account; a staff account "
        "needs a second agent's approval, so it is unlocked from the admin."
    )

    by_help = "institution ID of the help-desk agent unlocking it"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--reason", required=True, help="why, in a few words")

    def handle(self, *args, institution_id, by, method, reference, reason, **options):
        person = User.objects.filter(username=institution_id).first()
        if person is None:
            raise CommandError(f"no person with ID {institution_id!r}")
        unlock = ACTIONS["unlock"]
        actor = User.objects.filter(username=by, is_staff=True, is_active=True).first()
        if actor is None or not actor.has_perm(f"helpdesk.{unlock.permission}"):
            raise CommandError(f"no help-desk agent allowed to unlock with ID {by!r}")
        needs_approval = services.second_approval_reasons(person, action=unlock.key)
        if needs_approval:
            raise CommandError(
                " ".join(needs_approval) + " Unlock it from the person's page in the admin, where a second agent "
                "approves it."
            )
        try:
            # One transaction: a refused unlock leaves no identity check behind that nothing relied on.
            with transaction.atomic():
                services.record_identity_check(person, actor=actor, method=method, reference=reference)
                identity_services.unlock_user(person, actor=actor, reason=reason)
        except ValidationError as error:
            raise CommandError(error.messages[0]) from error
        self.stdout.write(self.style.SUCCESS(f"{institution_id} unlocked"))
