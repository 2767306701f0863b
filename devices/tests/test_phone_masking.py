"""AC-05: phone numbers in free text are masked whatever way they were typed, and nothing else is."""

import pytest
from django.db import connection

from devices.phone_numbers import MAY_HOLD_PHONE_NUMBER_SQL, mask_phone_numbers

MASKED = {
    "(617) 555-0142": "+1********42",
    "617.555.0143": "+1********43",
    "+1 617 555 0144": "+1********44",
    "617-555-0145": "+1********45",
    "6175550146": "+1********46",
    "+16175550177": "+1********77",
    "called (617) 555-0142 twice, then 617.555.0143": "called +1********42 twice, then +1********43",
    "local 555-0142 only": "local +1*****42 only",
    "+44 20 7946 0958": "+4*********58",
    "+49 30 1234567": "+4********67",
    "６１７ ５５５ ０１４２": "+1********42",  # full-width digits
    "networks 10.80.120.0/24, call 617-555-0145": "networks 10.80.120.0/24, call +1********45",
}
LEFT_AS_IT_IS = [
    "",
    "Cardiology",
    "ticket INC0012345",
    "2026-12-07 07:25:13+00:00",
    "192.168.100.200",
    "bench00000001",
    '{"rows": 1234567, "check": 12}',
    "550e8400-e29b-41d4-a716-446655440000",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "First100000 Last100000",
    "Room 12, building 3",
    # Network addresses and networks, as a VPN's settings name them.
    "networks 10.80.120.0/24",
    "10.80.120.0/24 and 10.80.121.0/24.",
    "from 10.80.120.5 to 2001:db8:0:1234::/64",
    # A ticket typed apart from its prefix: a bare run of digits that is no valid number.
    "INC 0012345678",
]


@pytest.mark.parametrize(("typed", "masked"), MASKED.items())
def test_ac_05_numbers_in_any_common_format_are_masked(typed, masked):
    assert mask_phone_numbers(typed) == masked


@pytest.mark.parametrize("text", LEFT_AS_IT_IS)
def test_ac_05_what_is_not_a_phone_number_is_left_as_it_is(text):
    assert mask_phone_numbers(text) == text


@pytest.mark.django_db
@pytest.mark.postgres  # the test PostgreSQL runs before masking a cell in an export
@pytest.mark.parametrize("text", [*MASKED, *LEFT_AS_IT_IS, "Zoë 555-0142", "٦١٧٥٥٥٠١٤٢"])
def test_ac_05_the_databases_test_finds_every_text_python_would_mask(text):
    """The CSV export lets PostgreSQL write the cells it says hold no phone number: it may say "may" too often, never
    too rarely."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s ~ %s", [text, MAY_HOLD_PHONE_NUMBER_SQL])
        may = cursor.fetchone()[0]
    assert may or mask_phone_numbers(text) == text
