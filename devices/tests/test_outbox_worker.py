"""The outbox through a real Celery worker on real Redis (REL-01, REL-02)."""

import re

import pytest
from django.core import mail

from devices import outbox, services
from devices.models import ActivationLink, OutboundMessage
from devices.tasks import send_outbound_message
from testsupport import wait_for

from .helpers import pending_app_registration


def mail_files(directory):
    return sorted(directory.iterdir())


@pytest.mark.postgres
@pytest.mark.redis
def test_rel02_activation_link_sent_by_real_worker_once(celery_worker_process, make_user):
    mail_dir = celery_worker_process
    person = make_user("worker1")
    registration = pending_app_registration(person)

    # Autocommit here: the send is dispatched when the service's transaction commits (REL-01).
    services.send_activation_link(registration, actor=person)

    message = OutboundMessage.objects.get(user=person)
    wait_for(lambda: OutboundMessage.objects.filter(pk=message.pk, status="sent").exists())
    files = wait_for(lambda: mail_files(mail_dir))
    assert len(files) == 1
    text = files[0].read_text()
    assert person.email in text
    token = re.search(r"https?://\S+/activate/#([A-Za-z0-9_-]+)", text).group(1)
    assert ActivationLink.objects.get(registration=registration).token_hash == services.hash_token(token)
    message.refresh_from_db()
    assert (message.attempts, message.encrypted_body) == (1, "")

    # Running the send again, here or in the worker, sends nothing.
    assert outbox.deliver_message(message.pk).message is None
    assert mail.outbox == []
    send_outbound_message.delay(message.pk)
    # A second person's link goes through the same single worker after the repeat: once it is out,
    # the repeat has been handled too.
    other = make_user("worker2")
    services.send_activation_link(pending_app_registration(other), actor=other)
    wait_for(lambda: OutboundMessage.objects.filter(user=other, status="sent").exists())
    files = wait_for(lambda: len(mail_files(mail_dir)) >= 2 and mail_files(mail_dir))
    assert len(files) == 2
    assert sum(person.email in f.read_text() for f in files) == 1
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("sent", 1)
