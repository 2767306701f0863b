import asyncio

from django.core.management.base import BaseCommand

from vpn.radius.server import serve


class Command(BaseCommand):
    help = "Run the RADIUS server (Access-Request with PAP, and Access-Challenge) for the configured RADIUS clients."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="0.0.0.0", help="Address to listen on (default all).")  # noqa: S104
        parser.add_argument("--port", type=int, default=1812)
        parser.add_argument("--workers", type=int, default=16, help="Requests verified at once (threads).")

    def handle(self, *args, host, port, workers, **options):
        asyncio.run(serve(host, port, workers=workers, ready=self._ready))

    def _ready(self):
        self.stdout.write("ready")
        self.stdout.flush()
