"""Where SMS and voice calls leave the system: one small interface, chosen by setting.

``send_sms(number, text)`` and ``place_call(number, text)`` return the
provider's id for the message. They raise :class:`TransientGatewayError`
when trying again later may work and nothing was sent (no connection, 429,
5xx), :class:`PermanentGatewayError` when it never will (a number the
provider refuses, bad credentials), and :class:`UnknownOutcomeError` when the
request went out but its answer did not come back (a read timeout, a
connection dropped mid-answer): the provider may have sent it.
``find_sent(channel, number, text, since)`` then asks the provider whether it
did, before anything is sent again.
"""

import sys
from datetime import datetime
from itertools import count
from typing import Protocol
from xml.sax.saxutils import escape

from django.conf import settings
from django.utils.module_loading import import_string


class GatewayError(Exception):
    pass


class TransientGatewayError(GatewayError):
    pass


class PermanentGatewayError(GatewayError):
    pass


class UnknownOutcomeError(GatewayError):
    """The request was sent and no answer came: the message may be on its way. Never send it again blindly."""


class Gateway(Protocol):
    def send_sms(self, number: str, text: str) -> str: ...

    def place_call(self, number: str, text: str) -> str: ...

    def find_sent(self, channel: str, number: str, text: str, since: datetime) -> str | None: ...


class OutboxOnlyGateway:
    """Development gateway: sends nothing. The help desk reads the messages in the admin's outbox."""

    _ids = count(1)

    def send_sms(self, number: str, text: str) -> str:
        return f"dev-sms-{next(self._ids)}"

    def place_call(self, number: str, text: str) -> str:
        return f"dev-call-{next(self._ids)}"

    def find_sent(self, channel: str, number: str, text: str, since: datetime) -> str | None:
        return None  # it always answers, so nothing is ever in doubt


class ConsoleGateway(OutboxOnlyGateway):
    """Development gateway, like Django's console email backend: prints each text or call where the server runs.

    The default under ``make run``, so a landline or a number needing a check can be tried without a provider.
    Marked as development only in what it prints; the deploy check refuses it (``devices.E110``).
    """

    stream = None  # tests point it elsewhere; None is the process's standard output
    # Read by ``make run``'s command (``run_demo``), which names no gateway class, to say where texts and calls go.
    prints_messages_here = True

    def _print(self, what: str, number: str, text: str) -> None:
        out = self.stream or sys.stdout
        out.write(
            f"\n----- DEVELOPMENT ONLY, NOT SENT: {what} to {number} -----\n{text.strip()}\n"
            f"----- (PHONE_GATEWAY=devices.gateways.ConsoleGateway prints texts and calls here) -----\n\n"
        )
        out.flush()

    def send_sms(self, number: str, text: str) -> str:
        self._print("text message", number, text)
        return super().send_sms(number, text)

    def place_call(self, number: str, text: str) -> str:
        self._print("voice call, these words would be spoken", number, text)
        return super().place_call(number, text)


def spoken_twiml(text: str, *, repeat: int = 2) -> str:
    """TwiML that reads ``text`` slowly, ``repeat`` times, with a pause between."""
    say = f'<Say voice="alice" language="en-US">{escape(text)}</Say>'
    return "<Response>" + '<Pause length="1"/>'.join([say] * repeat) + "</Response>"


class TwilioGateway:
    """SMS and voice through Twilio's REST API with the ``twilio`` library."""

    def __init__(self, *, account_sid: str, auth_token: str, from_number: str, api_base_url: str, timeout: float):
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        self.client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout))
        # The API host is a setting so tests (and regional deployments) can point elsewhere.
        self.client.api.base_url = api_base_url.rstrip("/")
        self.from_number = from_number

    def _call_provider(self, operation):
        from twilio.base.exceptions import TwilioException, TwilioRestException

        try:
            return operation().sid
        except TwilioRestException as exc:
            if exc.status == 429 or exc.status >= 500:
                raise TransientGatewayError(f"provider answered {exc.status}") from exc
            raise PermanentGatewayError(f"provider refused: {exc.status} {exc.code or ''}".strip()) from exc
        except TwilioException as exc:
            raise PermanentGatewayError(type(exc).__name__) from exc
        except OSError as exc:  # requests' errors are OSErrors
            if _never_reached_provider(exc):
                raise TransientGatewayError(type(exc).__name__) from exc
            raise UnknownOutcomeError(type(exc).__name__) from exc

    def send_sms(self, number: str, text: str) -> str:
        return self._call_provider(lambda: self.client.messages.create(to=number, from_=self.from_number, body=text))

    def place_call(self, number: str, text: str) -> str:
        return self._call_provider(
            lambda: self.client.calls.create(to=number, from_=self.from_number, twiml=spoken_twiml(text))
        )

    def find_sent(self, channel: str, number: str, text: str, since: datetime) -> str | None:
        """The sid of a message or call to ``number`` from us created since ``since`` (a text also by its body).

        Raises :class:`TransientGatewayError` when the provider cannot be asked now.
        """
        from twilio.base.exceptions import TwilioException

        try:
            if channel == "sms":
                records = self.client.messages.list(to=number, from_=self.from_number, limit=50)
                matches = [r for r in records if text in (r.body or "")]
            else:
                matches = self.client.calls.list(to=number, from_=self.from_number, limit=50)
            for record in matches:
                if record.date_created is None or record.date_created >= since:
                    return record.sid
            return None
        except (TwilioException, OSError) as exc:
            raise TransientGatewayError(f"could not ask the provider: {type(exc).__name__}") from exc


def _never_reached_provider(exc: OSError) -> bool:
    """True when the request cannot have been sent: the connection itself failed (refused, no route, connect timeout)."""
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import ConnectTimeout
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

    if isinstance(exc, ConnectTimeout):
        return True
    if isinstance(exc, RequestsConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        return isinstance(reason, ConnectTimeoutError)  # NewConnectionError (refused, no route) is one too
    return False


def twilio_from_settings() -> TwilioGateway:
    return TwilioGateway(
        account_sid=settings.TWILIO_ACCOUNT_SID,
        auth_token=settings.TWILIO_AUTH_TOKEN,
        from_number=settings.TWILIO_FROM_NUMBER,
        api_base_url=settings.TWILIO_API_BASE_URL,
        timeout=settings.TWILIO_TIMEOUT_SECONDS,
    )


def get_gateway() -> Gateway:
    """The gateway named by ``PHONE_GATEWAY`` (a dotted path to a class or factory), built from current settings."""
    return import_string(settings.PHONE_GATEWAY)()
