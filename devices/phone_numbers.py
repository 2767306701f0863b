"""Which numbers we will text or call: the toll-fraud guard (SMS-07), applied before anything is queued."""

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from phonenumbers import PhoneNumberType

from . import errors

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
