from django.core.management.base import BaseCommand, CommandError

from identity.audit import verify_chain
from identity.models import AuditEvent


class Command(BaseCommand):
    help = "Check the audit log's hash chain; name the first edited or missing row (AC-09)."

    def handle(self, *args, **options):
        problem = verify_chain()
        if problem:
            raise CommandError(f"audit log broken at row #{problem.sequence}: {problem.reason}")
        self.stdout.write(self.style.SUCCESS(f"audit log intact: {AuditEvent.objects.count()} events"))
