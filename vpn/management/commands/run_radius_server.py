import asyncio
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from identity import metrics
from vpn.radius.server import serve


class Command(BaseCommand):
    help = (
        "Run the RADIUS server (Access-Request with PAP, Access-Challenge, and Status-Server for probes) for the "
        "configured RADIUS clients."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="0.0.0.0", help="Address to listen on (default all).")  # noqa: S104
        parser.add_argument("--port", type=int, default=1812)
        parser.add_argument("--workers", type=int, default=16, help="Requests verified at once (threads).")
        parser.add_argument(
            "--queue", type=int, default=None, help="Requests waiting for a worker at most (default 4 per worker)."
        )
        parser.add_argument(
            "--max-wait",
            type=float,
            default=5.0,
            help="Seconds a request may wait for a worker (default 5); one that finds no room, or waits longer, gets "
            "no reply, so the VPN retransmits it or asks its other server.",
        )

        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="Serve Prometheus metrics on this TCP port (default METRICS_PORT; 0: off), on METRICS_HOST, to the "
            "networks and the token the settings allow.",
        )

    def handle(
        self,
        *args: Any,
        host: str,
        port: int,
        workers: int,
        queue: int | None,
        max_wait: float,
        metrics_port: int | None,
        **options: Any,
    ) -> None:
        metrics_port = settings.METRICS_PORT if metrics_port is None else metrics_port
        if metrics_port:
            metrics.serve_on_port(metrics_port)
        asyncio.run(serve(host, port, workers=workers, queue=queue, max_wait=max_wait, ready=self._ready))

    def _ready(self) -> None:
        self.stdout.write("ready")
        self.stdout.flush()
