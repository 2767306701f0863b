"""Phone numbers as identity keeps them: a directory's mobile number in E.164, and masked wherever one is shown or
audited (AC-05). ``devices`` masks with the same function."""

import phonenumbers
from django.conf import settings


def mask_phone_number(e164: str) -> str:
    """Show only the last two digits: +1 *** *** **67."""
    if len(e164) <= 4:
        return "*" * len(e164)
    return e164[:2] + "*" * (len(e164) - 4) + e164[-2:]


def to_e164(text: str) -> str:
    """``text`` (a number as a directory holds it: "+1 202 555 0100", "(617) 555-0142") in E.164, read in
    PHONENUMBER_DEFAULT_REGION unless it starts with its country code; "" when it is no valid number."""
    if not text or not text.strip():
        return ""
    try:
        parsed = phonenumbers.parse(text, settings.PHONENUMBER_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number(parsed):
        return ""
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
