"""When the directory last synced, as Prometheus sees it: read from the runs' table at each scrape of ``/metrics``.

A sync that stops running (beat down, a held run nobody decides) fails nothing, so no counter moves; the age of the
last applied run is what an alert can watch. Only full runs count: a one-person run (the desk's "Sync from the
directory") says nothing about everyone else. Nothing is reported where no full sync has ever been applied.
"""

import logging

from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily

from .models import DirectorySyncRun

log = logging.getLogger(__name__)


class DirectorySyncCollector:
    def collect(self):
        try:
            finished = (
                DirectorySyncRun.objects.filter(status=DirectorySyncRun.Status.APPLIED, dry_run=False, only_person="")
                .order_by("-started_at")
                .values_list("finished_at", flat=True)
                .first()
            )
        except DatabaseError:
            log.warning("metrics: the directory sync runs could not be read", exc_info=True)
            return
        if finished is not None:
            yield GaugeMetricFamily(
                "enrollment_directory_last_applied_sync_timestamp_seconds",
                "When the last applied full directory sync finished (Unix time).",
                value=finished.timestamp(),
            )
