from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "identity.directory"
    label = "directory"
    verbose_name = "Directory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from identity import metrics

        from . import ldap_checks  # noqa: F401  (registers the directory's system checks)
        from .metrics import DirectorySyncCollector

        # Read at each scrape of the web site's /metrics (identity.metrics).
        metrics.add_scrape_collector(DirectorySyncCollector())
