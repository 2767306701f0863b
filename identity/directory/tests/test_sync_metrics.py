"""A directory sync's outcome on the web site's /metrics: runs by status, people changed, the last applied run."""

import time
from datetime import timedelta

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from identity.directory import sync
from identity.directory.models import DirectorySyncRun
from identity.directory.tests import slapd as tree

pytestmark = pytest.mark.django_db


def scrape() -> dict[tuple, float]:
    text = Client().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    return {
        (sample.name, *sorted(sample.labels.values())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("enrollment_directory_")
    }


def test_sync_runs_and_their_changes_are_counted_and_the_last_applied_run_is_read(ldap_directory):
    ldap_directory.add_person(tree.Person(uid="zoe", given="Zoe", sn="Adams", mail="zoe@example.edu"))
    before = scrape()
    applied = sync.sync_directory()
    assert applied.status == "applied" and applied.created > 0
    ldap_directory.stop()
    assert sync.sync_directory().status == "failed"
    assert sync.sync_directory(dry_run=True).status == "failed"  # a dry run is not counted
    after = scrape()

    def moved(*key):
        return after.get(key, 0) - before.get(key, 0)

    assert moved("enrollment_directory_syncs_total", "applied") == 1
    assert moved("enrollment_directory_syncs_total", "failed") == 1
    assert moved("enrollment_directory_sync_people_total", "created") == applied.created
    assert 0 <= time.time() - after[("enrollment_directory_last_applied_sync_timestamp_seconds",)] < 120


def test_the_last_applied_sync_is_a_full_one_a_one_person_run_does_not_count(ldap_directory):
    # A full run applied an hour ago; since then only the desk's one-person runs: the gauge still says an hour ago,
    # so DirectorySyncStale still fires while full runs fail.
    full = sync.sync_directory()
    an_hour_ago = full.finished_at - timedelta(hours=1)
    DirectorySyncRun.objects.filter(pk=full.pk).update(started_at=an_hour_ago, finished_at=an_hour_ago)
    assert sync.sync_directory(person="alice").status == "applied"
    ldap_directory.stop()
    assert sync.sync_directory().status == "failed"
    gauge = scrape()[("enrollment_directory_last_applied_sync_timestamp_seconds",)]
    assert gauge == pytest.approx(an_hour_ago.timestamp())
