import json

from django.core.management.base import BaseCommand, CommandError

from identity.audit import Checkpoint, verify_chain
from identity.models import AuditEvent


class Command(BaseCommand):
    help = (
        "Check the audit log's hash chain; name the first edited or missing row (AC-09). With --checkpoints, also "
        "check it against signed checkpoints kept outside the database, so a cut or rewritten tail is named (AC-11)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoints",
            metavar="FILE",
            help="a file of checkpoints, one JSON object per line, as the audit-checkpoint log lines carry them",
        )

    def handle(self, *args, checkpoints=None, **options):
        given = []
        if checkpoints:
            with open(checkpoints, encoding="utf-8") as lines:
                given = [Checkpoint.from_dict(json.loads(line)) for line in lines if line.strip()]
        problem = verify_chain(checkpoints=given)
        if problem:
            raise CommandError(f"audit log broken at row #{problem.sequence}: {problem.reason}")
        self.stdout.write(
            self.style.SUCCESS(
                f"audit log intact: {AuditEvent.objects.count()} events, {len(given)} checkpoints matched"
            )
        )
