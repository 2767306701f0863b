"""The outbox as Prometheus sees it, read from the database at each scrape of the web site's ``/metrics``.

Only the rows still on their way (queued or sending) are counted: the status index finds them, however many sent
rows the table holds, so a scrape costs one small grouped query. What became of the others is counted as it
happens (``enrollment_outbox_deliveries_total``, in :mod:`devices.outbox.delivery`).
"""

import logging

from django.db import DatabaseError
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from .models import OutboundMessage

log = logging.getLogger(__name__)
Status, Channel = OutboundMessage.Status, OutboundMessage.Channel
WAITING = (Status.QUEUED, Status.SENDING)


class OutboxCollector:
    def collect(self):
        messages = GaugeMetricFamily(
            "enrollment_outbox_messages",
            "Outbound messages not yet sent, by channel and status.",
            labels=["channel", "status"],
        )
        oldest = GaugeMetricFamily(
            "enrollment_outbox_oldest_queued_age_seconds",
            "Age of the oldest queued outbound message, by channel (0: none queued).",
            labels=["channel"],
        )
        readable = GaugeMetricFamily(
            "enrollment_outbox_readable", "1 when this scrape could read the outbox from the database, else 0."
        )
        try:
            rows = list(
                # Bulk messages (a campaign's reminders) wait their turn in lanes of their own: counted, never "stuck".
                OutboundMessage.objects.filter(status__in=WAITING)
                .values_list("channel", "status")
                .annotate(count=Count("id"), first=Min("created_at", filter=Q(bulk=False)))
                .order_by()
            )
        except DatabaseError:
            log.warning("metrics: the outbox could not be read", exc_info=True)
            readable.add_metric([], 0)
            yield readable
            return
        now = timezone.now()
        found = {(channel, status): (n, first) for channel, status, n, first in rows}
        for channel in Channel.values:
            for status in WAITING:
                messages.add_metric([channel, status], found.get((channel, status), (0, None))[0])
            first = found.get((channel, Status.QUEUED), (0, None))[1]
            oldest.add_metric([channel], max(0.0, (now - first).total_seconds()) if first else 0.0)
        readable.add_metric([], 1)
        yield from (messages, oldest, readable)
