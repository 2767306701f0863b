from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "identity"
    verbose_name = "People and audit"

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401  (registers the system checks)
        from .db_roles import grant_after_migrate

        post_migrate.connect(grant_after_migrate, sender=self)
