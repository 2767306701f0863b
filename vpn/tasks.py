"""The VPN gate's periodic work. Thin: each task calls one service."""

from celery import shared_task


@shared_task(ignore_result=True)
def forget_spent_state() -> None:
    """Beat, every minute: delete async answers, RADIUS challenges and signatures that can no longer be used."""
    from .services import forget_spent_state as forget

    forget()
