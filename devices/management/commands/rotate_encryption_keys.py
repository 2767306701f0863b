from django.core.management.base import BaseCommand, CommandError

from devices.services.keys import DEFAULT_BATCH_SIZE, count_not_under_first_key, rotate_encryption_keys
from identity.models import User


class Command(BaseCommand):
    help = (
        "Re-encrypt every factor secret, queued message body, VPN integration secret and RADIUS shared secret under "
        "the first of FACTOR_ENCRYPTION_KEYS, in batches; safe to stop and run again (audited). With --check, only "
        "count what is not under the first key yet (exit status 1 while anything is). See docs/operations.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="count only; change nothing")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="rows per transaction")
        parser.add_argument("--by", help="institution ID of the staff member running this, for the audit log")

    def handle(self, *args, check=False, batch_size=DEFAULT_BATCH_SIZE, by=None, **options):
        if check:
            counts = count_not_under_first_key()
            for label, count in counts.items():
                self.stdout.write(f"{label}: {count}")
            if total := sum(counts.values()):
                raise CommandError(f"{total} not yet under the first key: run rotate_encryption_keys")
            self.stdout.write(self.style.SUCCESS("everything is under the first key"))
            return
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        actor = User.objects.filter(username=by).first() if by else None
        if by and actor is None:
            raise CommandError(f"no staff member with ID {by!r}")
        result = rotate_encryption_keys(
            actor=actor, batch_size=batch_size, on_batch=lambda done: self.stdout.write(f"batch {done.batches} done")
        )
        totals = result.totals()
        self.stdout.write(
            self.style.SUCCESS(
                f"rotated {totals['rotated']}, already under the first key {totals['already_current']}, "
                f"unreadable with every key {totals['unreadable']}"
            )
        )
        if totals["unreadable"]:
            raise CommandError(f"{totals['unreadable']} could not be read with any configured key (left as they are)")
