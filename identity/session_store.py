"""The session engine (``SESSION_ENGINE = "identity.session_store"``): Django's database sessions, with each row
naming its person and the device the session was verified with (``identity.models.PersonSession``).

Django's engine spends round trips a sign-in feels: a query to see whether a fresh random key is taken, a
transaction around every save, and, at every new key (SES-01), an insert, a read and a delete. Here a save is one
statement and a new key is one ``UPDATE`` of the key (the old one is gone in the same statement).
"""

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError, UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import connections, router
from django.utils import timezone
from django.utils.crypto import get_random_string
from django_otp import DEVICE_ID_SESSION_KEY

from .models import PersonSession

_COLUMNS = ("session_key", "session_data", "expire_date", "user_id", "otp_device_id")
# Expired rows deleted per statement: each batch is a short transaction of its own, so a large backlog never holds
# row locks or a long transaction against the sign-ins writing this table.
CLEAR_EXPIRED_BATCH = 5000


class SessionStore(DatabaseSessionStore):
    @classmethod
    def get_model_class(cls):
        return PersonSession

    def create_model_instance(self, data):
        row = super().create_model_instance(data)
        try:
            row.user_id = int(data.get(SESSION_KEY))
        except (TypeError, ValueError):
            row.user_id = None
        row.otp_device_id = data.get(DEVICE_ID_SESSION_KEY) or ""
        return row

    def _get_new_session_key(self):
        # 32 characters of 36 (165 bits): asking the database whether the key is taken costs a query for a collision
        # that does not happen; the insert refuses one anyway, and create() then draws again.
        return get_random_string(32, VALID_KEY_CHARS)

    def save(self, must_create=False):
        if self.session_key is None:
            return self.create()
        row = self.create_model_instance(self._get_session(no_load=must_create))
        db = connections[router.db_for_write(self.model, instance=row)]
        values = [self.model._meta.get_field(c).get_db_prep_save(getattr(row, c), db) for c in _COLUMNS]
        table = db.ops.quote_name(self.model._meta.db_table)
        with db.cursor() as cursor:
            if must_create:
                cursor.execute(
                    f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES (%s, %s, %s, %s, %s) "  # noqa: S608
                    "ON CONFLICT (session_key) DO NOTHING RETURNING session_key",
                    values,
                )
                if cursor.fetchone() is None:
                    raise CreateError
            else:
                cursor.execute(
                    f"UPDATE {table} SET session_data = %s, expire_date = %s, user_id = %s, otp_device_id = %s "  # noqa: S608
                    "WHERE session_key = %s",
                    [*values[1:], values[0]],
                )
                if cursor.rowcount != 1:
                    raise UpdateError

    def cycle_key(self):
        """A new key for the same session (SES-01): the row is renamed, so the old key stops working at once."""
        old = self.session_key
        if old is None:
            return super().cycle_key()
        data = self._session
        new = self._get_new_session_key()
        renamed = self.model.objects.filter(session_key=old).update(session_key=new)
        if renamed != 1:
            return super().cycle_key()  # never saved (or already gone): Django's way, a new row
        self._session_key = new
        self._session_cache = data
        self.modified = True
        return None

    def delete(self, session_key=None):
        session_key = session_key or self.session_key
        if session_key is not None:
            self.model.objects.filter(session_key=session_key).delete()

    @classmethod
    def clear_expired(cls):
        """Delete the expired rows, ``CLEAR_EXPIRED_BATCH`` at a time (Django's engine deletes them in one
        statement); return how many. Django's ``clearsessions`` and the beat task ``clear_expired_sessions`` call it.
        Safe to stop and run again: each batch commits on its own."""
        model = cls.get_model_class()
        now = timezone.now()
        cleared = 0
        while True:
            batch = model.objects.filter(expire_date__lt=now).values("session_key")[:CLEAR_EXPIRED_BATCH]
            deleted, _ = model.objects.filter(session_key__in=batch).delete()
            cleared += deleted
            if deleted < CLEAR_EXPIRED_BATCH:
                return cleared
