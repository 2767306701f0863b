"""Which numbers we will text or call: the toll-fraud guard (SMS-07), applied before anything is queued; and the
masking of phone numbers in free text (AC-05)."""

import ipaddress
import re

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from phonenumbers import Leniency, PhoneNumberFormat, PhoneNumberType, ValidationResult

from . import errors
from .models import mask_phone_number

REFUSED_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "premium-rate",
    PhoneNumberType.SHARED_COST: "shared-cost",
    PhoneNumberType.TOLL_FREE: "toll-free",
    PhoneNumberType.UAN: "non-geographic",
    PhoneNumberType.PAGER: "pager",
}


def _parse(number) -> phonenumbers.PhoneNumber:
    return number if isinstance(number, phonenumbers.PhoneNumber) else phonenumbers.parse(str(number), None)


def check_personal_number(number) -> None:
    """Raise ``ValidationError`` for an invalid number or one no person carries (premium-rate, toll-free, ...)."""
    parsed = _parse(number)
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError(errors.PHONE_INVALID, code="invalid")
    kind = phonenumbers.number_type(parsed)
    if kind in REFUSED_TYPES:
        raise ValidationError(errors.PHONE_TYPE_REFUSED.format(kind=REFUSED_TYPES[kind]), code="number_type")


def check_reachable(number) -> None:
    """Raise ``ValidationError`` unless we may text or call ``number``: a personal number in an allowed country."""
    check_personal_number(number)
    if phonenumbers.region_code_for_number(_parse(number)) not in settings.PHONE_ALLOWED_REGIONS:
        raise ValidationError(errors.PHONE_COUNTRY_NOT_ALLOWED, code="country")


# Free text (an identity check's reference, an event's details) holds numbers as people type them: "(617) 555-0142",
# "617.555.0143", "+1 617 555 0144". libphonenumber's matcher finds them; POSSIBLE leniency also finds numbers that are
# well formed but not (yet) assigned, which VALID would leave in clear.
# The shortest number the metadata knows, with its country code, has 6 digits (+43 and four): text without 6 digits in
# a row, apart from the separators people put between them, holds no number to mask and is not searched.
MIN_DIGITS = 6
# Up to four separators between two digits: ") ", " - ", " / ".
_MAY_HOLD_NUMBER = re.compile(rf"\d(?:\W{{0,4}}\d){{{MIN_DIGITS - 1}}}")


# The characters of an IPv4 or IPv6 address or network as written ("10.80.120.0/24", "2001:db8::/32"): a match inside
# such a run is read as the whole run before it is taken for a phone number.
_ADDRESS_CHARACTERS = frozenset("0123456789abcdefABCDEF.:/")


def _address_around(text: str, start: int, end: int) -> str:
    """The run of address characters around ``text[start:end]``."""
    while start > 0 and text[start - 1] in _ADDRESS_CHARACTERS:
        start -= 1
    while end < len(text) and text[end] in _ADDRESS_CHARACTERS:
        end += 1
    return text[start:end].rstrip(".:")


def _is_network_address(candidate: str) -> bool:
    try:
        ipaddress.ip_network(candidate, strict=False)
    except ValueError:
        return False
    return True


def mask_phone_numbers(text: str) -> str:
    """``text`` with every phone number in it, in any common format, masked as :func:`mask_phone_number` masks one.

    A number is read in ``PHONENUMBER_DEFAULT_REGION`` unless it starts with its country code. Not masked: digits
    inside a word (a ticket "INC0012345", a hash), a network address or network ("10.80.120.0/24"), a bare run of
    digits too short for anything but a local number (a count such as 1234567), and a bare run of digits that is no
    valid number (a ticket "INC 0012345678": no number here starts with 0); "555-0142", written as a number, is.
    """
    if not text or not _MAY_HOLD_NUMBER.search(text):
        return text
    masked = []
    end = 0
    for match in phonenumbers.PhoneNumberMatcher(text, settings.PHONENUMBER_DEFAULT_REGION, Leniency.POSSIBLE):
        before = text[match.start - 1] if match.start else " "
        after = text[match.end] if match.end < len(text) else " "
        if before.isalnum() or after.isalnum():
            continue
        if _is_network_address(_address_around(text, match.start, match.end)):
            continue
        if match.raw_string.isdigit():
            # Written with no separator it may be any identifier: a number only if it is a whole, valid one.
            local_only = (
                phonenumbers.is_possible_number_with_reason(match.number) == ValidationResult.IS_POSSIBLE_LOCAL_ONLY
            )
            if local_only or not phonenumbers.is_valid_number(match.number):
                continue
        masked += [
            text[end : match.start],
            mask_phone_number(phonenumbers.format_number(match.number, PhoneNumberFormat.E164)),
        ]
        end = match.end
    return "".join(masked) + text[end:] if masked else text


def mask_phone_numbers_in(value):
    """``value`` (an event's details: JSON's dicts, lists, texts and numbers) with every text's phone numbers masked.

    Mask before writing JSON, not the JSON: its escapes ("\\n" before a number typed on a line of its own) would hide
    a number from the matcher.
    """
    if isinstance(value, str):
        return mask_phone_numbers(value)
    if isinstance(value, dict):
        return {key: mask_phone_numbers_in(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_phone_numbers_in(item) for item in value]
    return value


# PostgreSQL's side of the first step above, for a database to tell which texts need not go to Python at all: a text
# outside ASCII (Python's \d and \W know every script; this cheap test knows ASCII only), or MIN_DIGITS ASCII digits
# with at most four other characters between each two. True of every text mask_phone_numbers changes, and of more.
MAY_HOLD_PHONE_NUMBER_SQL = rf"[^\x01-\x7e]|[0-9]([^0-9]{{0,4}}[0-9]){{{MIN_DIGITS - 1}}}"
