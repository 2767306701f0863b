from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "campaigns"
    verbose_name = "Enrollment campaigns"

    def ready(self):
        from devices import outbox
        from identity import setup_deadline

        from . import (
            checks,  # noqa: F401  (registers the deploy check)
            reminder_tasks,  # noqa: F401  (registers the reminder, nudge and summary tasks)
        )
        from .nudges import unwanted
        from .reminders import TEMPLATE_PREFIX
        from .web import setup_deadline_for

        setup_deadline.register(setup_deadline_for)
        # The outbox asks, when a worker claims one of our bulk messages, whether it is still worth sending.
        outbox.unwanted[TEMPLATE_PREFIX] = unwanted
