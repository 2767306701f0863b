"""The session engine (``SESSION_ENGINE = "identity.session_store"``): Django's database sessions, with each row
naming its person and the device the session was verified with (``identity.models.PersonSession``)."""

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django_otp import DEVICE_ID_SESSION_KEY


class SessionStore(DatabaseSessionStore):
    @classmethod
    def get_model_class(cls):
        from .models import PersonSession

        return PersonSession

    def create_model_instance(self, data):
        row = super().create_model_instance(data)
        try:
            row.user_id = int(data.get(SESSION_KEY))
        except (TypeError, ValueError):
            row.user_id = None
        row.otp_device_id = data.get(DEVICE_ID_SESSION_KEY) or ""
        return row
