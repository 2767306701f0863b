from django.apps import AppConfig


class VpnConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "vpn"
    verbose_name = "VPN gate"

    def ready(self) -> None:
        from devices.crypto import register_encrypted_field

        from . import checks  # noqa: F401  (registers the system checks)
        from .models import Integration, RadiusClient

        # Encrypted with the factor keys, so a key rotation re-encrypts them too (devices.services.keys).
        register_encrypted_field(Integration, "encrypted_secret")
        register_encrypted_field(RadiusClient, "encrypted_secret")
