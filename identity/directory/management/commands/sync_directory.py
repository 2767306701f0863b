from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from identity.directory import sync
from identity.directory.models import COUNTS, DirectorySyncRun


class Command(BaseCommand):
    help = (
        "Sync people from the LDAP / Active Directory directory (one way: nothing is written to it). "
        "A run whose read fails changes nobody; one that would deactivate too many people is held for a "
        "superuser in the admin (docs/directory.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--person", metavar="ID", help="Sync only this institution ID (never deactivates others).")
        parser.add_argument("--dry-run", action="store_true", help="Count what would change; change nobody.")

    def handle(self, *args, person=None, dry_run=False, **options):
        if not settings.LDAP_SERVER_URIS:
            raise CommandError("No directory is configured (LDAP_SERVER_URIS is empty).")
        try:
            run = sync.sync_directory(person=person, dry_run=dry_run, trigger=DirectorySyncRun.Trigger.COMMAND)
        except sync.SyncInProgress as error:
            raise CommandError(str(error)) from error
        counts = ", ".join(f"{name} {getattr(run, name)}" for name in COUNTS)
        would = " (dry run: counts of what would change)" if dry_run else ""
        self.stdout.write(f"Run {run.pk}: {run.get_status_display()}; read {run.read}; {counts}{would}")
        if run.error_text:
            self.stdout.write(run.error_text)
        if run.status == DirectorySyncRun.Status.FAILED:
            raise CommandError(f"Run {run.pk} failed: nobody was changed.")
