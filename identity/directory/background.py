"""A superuser's "Sync now", run by a worker: above both the sync and its task, so neither imports the other."""

from django.db import transaction

from ..models import User
from . import tasks
from .sync import check_requester


def request_sync(*, actor: User) -> None:
    """A full run by the worker, after this transaction commits (the run is audited ``directory.sync_requested`` when
    it starts). Raises :class:`identity.directory.sync.SyncNotAllowed` for anyone but a superuser."""
    check_requester(actor, None)
    transaction.on_commit(lambda: tasks.sync_directory.delay(actor_id=actor.pk))
