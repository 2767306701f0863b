"""The benchmark's baseline: a task that does nothing, loaded into the bench worker with ``--include``.

It has the send task's options (late ack, no result, bound), so the two sides
differ only in what the task body does.
"""

from celery import shared_task


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None)
def noop(self, message_id: int) -> None:
    return None
