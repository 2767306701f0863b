from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "identity"
    verbose_name = "People and audit"

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401  (registers the system checks)
        from .db_roles import grant_after_migrate

        post_migrate.connect(grant_after_migrate, sender=self)

        # An index expression's operator class is written after the expression, outside its parentheses, only for
        # the wrapper classes Django knows (django.contrib.postgres registers its OpClass the same way): ours, which
        # the SQLite default leaves out, is one of them.
        from django.db.models.indexes import IndexExpression

        from .models import PostgresOpClass

        wrappers = IndexExpression.wrapper_classes
        if PostgresOpClass not in wrappers:
            IndexExpression.register_wrappers(wrappers[0], PostgresOpClass, *wrappers[1:])
