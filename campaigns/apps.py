from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "campaigns"
    verbose_name = "Enrollment campaigns"

    def ready(self):
        from devices import outbox

        from . import reminder_tasks  # noqa: F401  (registers the reminder, nudge and summary tasks)
        from .nudges import still_wanted
        from .reminders import TEMPLATE_PREFIX

        # The outbox asks, when a worker claims one of our bulk messages, whether it is still worth sending.
        outbox.still_wanted[TEMPLATE_PREFIX] = still_wanted
