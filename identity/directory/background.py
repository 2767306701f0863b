"""A superuser's "Sync now" and "Apply" on a held run, run by a worker: above both the sync and its tasks, so neither
imports the other."""

import logging

from django.core.exceptions import ValidationError
from django.db import transaction

from ..models import User
from . import tasks
from .models import DirectorySyncRun
from .sync import SyncNotAllowed, check_requester, claim_held_run, give_up_claimed_run

log = logging.getLogger(__name__)

NOT_QUEUED = "Not applied: the worker's queue could not be reached when a superuser decided to apply it."


class SyncNotQueued(ValidationError):
    """A superuser's "Sync now" that could not reach the worker's queue: nothing was started."""


def request_sync(*, actor: User) -> None:
    """A full run by the worker, after this transaction commits (the run is audited ``directory.sync_requested`` when
    it starts; a request that finds another run going is audited ``directory.sync_request_refused``). Raises
    :class:`identity.directory.sync.SyncNotAllowed` for anyone but a superuser, and :class:`SyncNotQueued` when the
    worker's queue cannot be reached (the broker down)."""
    check_requester(actor, None)

    def queue() -> None:
        try:
            tasks.sync_directory.delay(actor_id=actor.pk)
        except Exception as error:  # any broker failure: no worker will run it
            log.warning("directory sync: a sync of everyone could not be queued (%s)", type(error).__name__)
            raise SyncNotQueued(
                "The worker's queue could not be reached, so no sync was started and nobody was changed. Try again "
                "once the queue is back; the scheduled runs go on as before."
            ) from error

    transaction.on_commit(queue)


def request_apply(run: DirectorySyncRun, *, actor: User) -> DirectorySyncRun:
    """A superuser's decision to apply a held run, taken now (:func:`identity.directory.sync.claim_held_run`: the run
    is running from here on, and a Discard is refused) and applied by the worker after this transaction commits.
    Raises :class:`identity.directory.sync.SyncNotAllowed` as the claim does, and once the claim has committed when
    the worker's queue cannot be reached (the broker down): the run is then ended failed, nobody changed, audited
    (:func:`identity.directory.sync.give_up_claimed_run`), so that it never stays "running" with no task to apply
    it."""

    def queue() -> None:
        try:
            tasks.apply_held_run.delay(run_id=run.pk, actor_id=actor.pk)
        except Exception as error:  # any broker failure: no task will come for this run
            log.warning("directory sync run %s: its apply could not be queued (%s)", run.pk, type(error).__name__)
            give_up_claimed_run(run, actor=actor, reason=NOT_QUEUED)
            raise SyncNotAllowed(
                "The worker's queue could not be reached, so this run was not applied and nobody was changed; it "
                "has ended failed. The next scheduled run reads the directory afresh (and is held again if it "
                "still would deactivate too many people)."
            ) from error

    with transaction.atomic():
        run = claim_held_run(run, actor=actor)
        transaction.on_commit(queue)
    return run
