from django.apps import AppConfig


class VpnConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "vpn"
    verbose_name = "VPN gate"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
