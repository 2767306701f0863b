"""Async answers, RADIUS challenges and signatures that can no longer be used are deleted, the usable ones kept."""

from datetime import timedelta

import pytest
from django.utils import timezone

from vpn import services
from vpn.models import AuthTransaction, RadiusChallenge, SeenSignature

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_spent_async_answers_and_challenges_are_forgotten(integration, vpn_person):
    client, _ = services.create_radius_client(name="ASA", network="10.0.0.1/32", actor=None)
    now = timezone.now()
    for n, age in enumerate((timedelta(minutes=11), timedelta(minutes=9))):
        AuthTransaction.objects.create(
            txid=f"tx{n}", integration=integration, result="deny", status="deny", status_msg="", created_at=now - age
        )
    for n, left in enumerate((timedelta(seconds=-1), timedelta(seconds=60))):
        RadiusChallenge.objects.create(state_hash=f"s{n}", user=vpn_person, client=client, expires_at=now + left)

    # A signature's date is refused after 300 s (API-01); its digest is kept twice that long, then forgotten (API-02).
    for n, age in enumerate((timedelta(seconds=601), timedelta(seconds=599))):
        SeenSignature.objects.create(integration=integration, digest=f"{n}" * 64, seen_at=now - age)

    assert services.forget_spent_state(now) == {"async_answers": 1, "radius_challenges": 1, "signatures": 1}
    assert list(AuthTransaction.objects.values_list("txid", flat=True)) == ["tx1"]
    assert list(RadiusChallenge.objects.values_list("state_hash", flat=True)) == ["s1"]
    assert list(SeenSignature.objects.values_list("digest", flat=True)) == ["1" * 64]
    assert services.forget_spent_state(now) == {"async_answers": 0, "radius_challenges": 0, "signatures": 0}
