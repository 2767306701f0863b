"""The session engine (``SESSION_ENGINE = "identity.session_store"``): Django's database sessions, with each row
naming its person and the device the session was verified with (``identity.models.PersonSession``).

Django's engine spends round trips a sign-in feels: a query to see whether a fresh random key is taken, a
transaction around every save, and, at every new key (SES-01), an insert, a read and a delete. Here a save is one
statement and a new key is one ``UPDATE`` of the key (the old one is gone in the same statement).

Only the methods Django documents for a session engine are overridden ("Extending database-backed session
engines"): ``create``, ``save``, ``load``, ``exists``, ``delete``, ``cycle_key``, ``get_model_class`` and
``create_model_instance``. Django's own ``create()`` and ``cycle_key()`` still draw the key and keep the data; the
overrides only change what those steps cost, and if Django stops calling them in this order a step costs a query
more (``identity/tests/test_query_counts.py`` notices), never a wrong answer.
"""

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import connections, router
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY

from .models import PersonSession

_COLUMNS = ("session_key", "session_data", "expire_date", "user_id", "otp_device_id")
# Expired rows deleted per statement: each batch is a short transaction of its own, so a large backlog never holds
# row locks or a long transaction against the sign-ins writing this table.
CLEAR_EXPIRED_BATCH = 5000


class SessionStore(DatabaseSessionStore):
    # While create() draws a key: the key is new, so there is no row to load, and asking whether it is taken costs
    # a query for a collision that does not happen (32 characters of 36, 165 bits); the insert refuses one anyway,
    # and create() then draws again.
    drawing_key = False
    # While cycle_key() runs: the key the session had, whose row create() renames instead of inserting a new one.
    renaming_from: str | None = None
    # The key a rename left behind, which cycle_key() then asks to delete: no row has it any more.
    renamed_from: str | None = None

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

    def create(self):
        self.drawing_key = True
        try:
            super().create()
        finally:
            self.drawing_key = False

    def exists(self, session_key):
        return False if self.drawing_key else super().exists(session_key)

    def load(self):
        return {} if self.drawing_key else super().load()

    def save(self, must_create=False):
        if self.session_key is None:
            return self.create()
        if must_create and self.renaming_from is not None and self.rename_row(self.renaming_from):
            return None
        # Django's save reads the data without loading it when it must create (no_load): load() above does the same.
        row = self.create_model_instance(dict(self.items()))
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
        return None

    def rename_row(self, old: str) -> bool:
        """Give the row of ``old`` the key create() just drew; False when there is none (never saved, or gone), and
        create() then inserts one, as Django does."""
        renamed = self.model.objects.filter(session_key=old).update(session_key=self.session_key)
        if renamed != 1:
            return False
        self.renamed_from = old
        return True

    def cycle_key(self):
        """A new key for the same session (SES-01): the row is renamed, so the old key stops working at once."""
        self.renaming_from = self.session_key
        try:
            super().cycle_key()
        finally:
            self.renaming_from = self.renamed_from = None

    def delete(self, session_key=None):
        session_key = session_key or self.session_key
        if session_key is not None and session_key != self.renamed_from:
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
