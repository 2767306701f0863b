"""Every report page reads as words: a person sees the factors', statuses' and actions' words, never the names the
code and the files use for them (the files keep those, documented in docs/auditors.md)."""

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest

from campaigns import services as campaign_services
from campaigns.models import Campaign, CohortEntry
from campaigns.tests.support import running_campaign
from helpdesk import services as desk_services
from helpdesk.models import IdentityCheck
from identity import audit
from identity.directory.models import DirectorySyncRun
from identity.events import EVENTS
from identity.models import User
from identity.services import unlock_user
from reports.selectors import ACTION_GROUPS, FACTOR_LABELS

pytestmark = pytest.mark.django_db

SNAKE_CASE = re.compile(r"\b[a-z]+_[a-z0-9_]+\b")
ESCAPE = re.compile(r"\\u[0-9a-fA-F]{4}")
# Code words a cell could hold alone: statuses, who started a run, VPN access, action groups, factors.
CODE_WORDS = {
    *DirectorySyncRun.Status.values,
    *DirectorySyncRun.Trigger.values,
    *User.VpnAccess.values,
    *ACTION_GROUPS,
    *FACTOR_LABELS,
}


class _Text(HTMLParser):
    """What a person reads on a page: its text (charts' included) and its tooltips, not its markup or its form values."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        self.parts += [value for name, value in attrs if name in ("title", "aria-label") and value]

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def code_names_in(page: str) -> list[str]:
    reader = _Text()
    reader.feed(page.split('id="content-main"', 1)[1])  # the report, not the admin's menus
    found = []
    for part in reader.parts:
        found += [action for action in EVENTS if action in part]
        found += SNAKE_CASE.findall(part) + ESCAPE.findall(part)
        found += [word for word in part.split(";") if word.strip() in CODE_WORDS]
    return found


@pytest.fixture
def everything(population, staff_member, superuser, make_user):
    """The population, desk actions with their identity checks, an unlock with an accented reason, sync runs, and
    Radiology's people in two open campaigns."""
    check = desk_services.record_identity_check(
        population.grace, actor=staff_member, method=IdentityCheck.Method.PHOTO_ID_IN_PERSON, reference="badge 12"
    )
    desk_services.send_reactivation_link(population.grace, actor=staff_member, identity_check=check)
    unlock_user(population.erin, actor=staff_member, reason="Rückruf bestätigt – “called back”")
    audit.record("signin.second_factor_ok", actor=population.bob, subject=population.bob, details={"factor": "phone"})
    DirectorySyncRun.objects.create(trigger="beat", status="held", deactivated=600, read=610)
    DirectorySyncRun.objects.create(trigger="user", triggered_by=superuser, status="applied", created=3, read=9)
    for name in ("Spring rollout", "Radiology first"):
        campaign = running_campaign(name=name, cohort=Campaign.Cohort.DEPARTMENTS, deadline_in=timedelta(days=20))
        CohortEntry.objects.create(campaign=campaign, value="Radiology")
        campaign_services.refresh_members(campaign, now=campaign.starts_at)
    return campaign


PAGES = [
    ("/admin/reports/", {}),
    ("/admin/reports/dashboard/", {}),
    ("/admin/reports/enrollment/", {}),
    ("/admin/reports/enrollment/", {"strongest_factor": "passkey_synced", "has_kind": "passkey"}),
    ("/admin/reports/enrollment/", {"vpn_access": "approved", "enrolled": "no"}),
    ("/admin/reports/enrollment/", {"strongest_factor": "phone", "department": "Radiology"}),
    ("/admin/reports/audit/", {}),
    ("/admin/reports/audit/", {"group": "helpdesk"}),
    ("/admin/reports/helpdesk/", {}),
    ("/admin/reports/directory-sync/", {}),
    ("/admin/reports/directory-sync/", {"status": "held"}),
    ("/admin/reports/campaign-people/", {}),
]


def test_every_report_page_reads_as_words(auditor_client, everything):
    pages = [*PAGES, (f"/admin/reports/campaigns/{everything.pk}/", {})]
    found = {}
    for url, query in pages:
        response = auditor_client.get(url, query)
        assert response.status_code == 200, url
        if names := code_names_in(response.content.decode()):
            found[f"{url} {query}"] = sorted(set(names))
    assert found == {}


def test_the_pages_show_the_words_themselves(auditor_client, everything):
    enrollment = auditor_client.get("/admin/reports/enrollment/", {"strongest_factor": "passkey_synced"})
    assert "Filters: Strongest factor: Passkey, synced<" in enrollment.content.decode()
    assert "<td>Passkey, synced</td>" in enrollment.content.decode()

    audit_page = auditor_client.get("/admin/reports/audit/", {"group": "lockout"}).content.decode()
    assert "Filters: Action group: Lockout<" in audit_page
    assert "Account unlocked: “Rückruf bestätigt – “called back””" in audit_page

    desk = auditor_client.get("/admin/reports/helpdesk/").content.decode()
    assert f"{IdentityCheck.Method.PHOTO_ID_IN_PERSON.label}: 1" in desk

    runs = auditor_client.get("/admin/reports/directory-sync/", {"status": "held"}).content.decode()
    assert "Filters: Status: Held: waiting for a superuser<" in runs and "<td>Schedule</td>" in runs
