"""Plain-text messages are not HTML: an email's body, a text and a call's words keep "'", "&", "<" as written, while
the site's pages still escape them."""

import pytest
from django.core import mail
from django.template.loader import render_to_string
from django.utils import timezone

from devices import outbox, services
from devices.services.notices import notify_person
from devices.tests.fakes import RecordingGateway
from devices.tests.helpers import pending_landline

pytestmark = pytest.mark.django_db

NAME = ("Siobhán", "O'Brien & <Sons>")


def test_a_text_email_keeps_quotes_and_ampersands_as_written(make_user, django_capture_on_commit_callbacks, settings):
    settings.INSTITUTION_NAME = "Smith & Jones' Hospital"
    person = make_user(first_name=NAME[0], last_name=NAME[1])
    with django_capture_on_commit_callbacks(execute=True):
        notify_person(person, event="account.unlocked")
    (message,) = mail.outbox
    assert "Hello Siobhán O'Brien & <Sons>," in message.body
    assert "Smith & Jones' Hospital" in message.body
    assert "&#x27;" not in message.body and "&amp;" not in message.body and "&lt;" not in message.body


def test_a_spoken_code_keeps_the_institutions_name(make_user, recording_gateway, sending, settings):
    settings.INSTITUTION_NAME = "Smith & Jones' Hospital"
    person = make_user()
    landline = pending_landline(person, "+16175550166")
    with sending():
        services.send_phone_code(landline, channel="voice", actor=person, verified_at=timezone.now())
    assert "Smith & Jones' Hospital" in RecordingGateway.last_to("+16175550166").text


def test_the_site_s_pages_still_escape(make_user):
    person = make_user(first_name=NAME[0], last_name=NAME[1])
    html = render_to_string("emails/security_notice.txt", {"user": person})  # the site's engine
    assert "O&#x27;Brien &amp; &lt;Sons&gt;" in html
    assert "O'Brien & <Sons>" in outbox.render_text("emails/security_notice.txt", {"user": person})
