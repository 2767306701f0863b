"""Small helpers for the identity tests: real codes, wrong codes, the sign-in steps."""

from django.conf import settings

from conftest import PASSWORD
from devices import totp

SIGN_IN = "/account/sign-in/"
SECOND_FACTOR = "/account/sign-in/second-factor/"


def wrong_code(device) -> str:
    """Six digits that no step near now produces for this device, so the refusal is not luck."""
    key = device.secret_bytes()
    now = totp.current_step()
    near = {totp.code_at(key, step) for step in range(now - 3, now + 4)}
    return next(candidate for candidate in (f"{n:06d}" for n in range(1_000_000)) if candidate not in near)


def post_password(client, person, password: str = PASSWORD, **extra):
    return client.post(SIGN_IN, {"username": person.username, "password": password}, **extra)


def post_code(client, device, code: str):
    return client.post(SECOND_FACTOR, {"device": device.persistent_id, "code": code})


def signed_in_user_id(client):
    from django.contrib.auth import SESSION_KEY

    value = client.session.get(SESSION_KEY)
    return int(value) if value is not None else None


def is_otp_verified(client) -> bool:
    from django_otp import DEVICE_ID_SESSION_KEY

    return bool(client.session.get(DEVICE_ID_SESSION_KEY))


def locked_message() -> str:
    return f"This account is locked after too many wrong codes. Contact {settings.HELP_DESK_CONTACT} to unlock it."
