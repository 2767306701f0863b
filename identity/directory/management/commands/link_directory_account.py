from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from identity.directory import people
from identity.directory.records import DirectoryRecord
from identity.models import User


class Command(BaseCommand):
    help = (
        "Make an existing local account the person of a directory entry with the same institution ID (audited). "
        "A sync never does this on its own. From then on the directory owns the person's details and password; "
        "the next sync or SCIM call brings in the directory's values."
    )

    def add_arguments(self, parser):
        parser.add_argument("institution_id")
        parser.add_argument(
            "--directory-id",
            required=True,
            help="The entry's stable ID (objectGUID, entryUUID, SCIM id). With LDAP_SERVER_URIS set, it must be the "
            "one the directory's entry with this institution ID has.",
        )
        parser.add_argument("--source", choices=[User.Source.LDAP, User.Source.SCIM], default=User.Source.LDAP)
        parser.add_argument(
            "--dn",
            default="",
            help="The entry's DN, for an LDAP directory (read from it when LDAP_SERVER_URIS is set).",
        )
        parser.add_argument("--by", required=True, help="Institution ID of the superuser who decided it.")

    def handle(self, *args, institution_id, directory_id, source, dn, by, **options):
        user = User.objects.filter(username=institution_id).first()
        if user is None:
            raise CommandError(f"no person with ID {institution_id!r}")
        actor = User.objects.filter(username=by, is_superuser=True).first()
        if actor is None:
            raise CommandError(f"no superuser with ID {by!r}")
        # The account's own details until the directory's arrive: linking alone changes nothing else.
        record = DirectoryRecord(
            source=source,
            directory_id=directory_id,
            institution_id=user.username,
            dn=dn,
            first_name=user.first_name,
            last_name=user.last_name,
            email=user.email,
            department=user.department,
        )
        try:
            people.link_local_account(user, record, actor=actor)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(self.style.SUCCESS(f"{institution_id} now comes from the directory ({source})"))
