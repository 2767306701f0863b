"""A superuser's "Sync now" and "Apply" on a held run, run by a worker: above both the sync and its tasks, so neither
imports the other."""

from django.db import transaction

from ..models import User
from . import tasks
from .models import DirectorySyncRun
from .sync import check_requester, claim_held_run


def request_sync(*, actor: User) -> None:
    """A full run by the worker, after this transaction commits (the run is audited ``directory.sync_requested`` when
    it starts; a request that finds another run going is audited ``directory.sync_request_refused``). Raises
    :class:`identity.directory.sync.SyncNotAllowed` for anyone but a superuser."""
    check_requester(actor, None)
    transaction.on_commit(lambda: tasks.sync_directory.delay(actor_id=actor.pk))


def request_apply(run: DirectorySyncRun, *, actor: User) -> DirectorySyncRun:
    """A superuser's decision to apply a held run, taken now (:func:`identity.directory.sync.claim_held_run`: the run
    is running from here on, and a Discard is refused) and applied by the worker after this transaction commits.
    Raises :class:`identity.directory.sync.SyncNotAllowed` as the claim does."""
    with transaction.atomic():
        run = claim_held_run(run, actor=actor)
        transaction.on_commit(lambda: tasks.apply_held_run.delay(run_id=run.pk, actor_id=actor.pk))
    return run
