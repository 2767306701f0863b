from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "identity.directory"
    label = "directory"
    verbose_name = "Directory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import ldap_checks  # noqa: F401  (registers the directory's system checks)
