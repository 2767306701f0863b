from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "campaigns"
    verbose_name = "Enrollment campaigns"

    def ready(self):
        from identity import setup_deadline

        from . import checks  # noqa: F401  (registers the deploy check)
        from .web import setup_deadline_for

        setup_deadline.register(setup_deadline_for)
