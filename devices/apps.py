from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "devices"
    verbose_name = "Devices"

    def ready(self):
        from identity import metrics

        from . import (
            checks,  # noqa: F401  (registers the system checks)
            outbox,
            tasks,
        )
        from .crypto import register_encrypted_field
        from .metrics import OutboxCollector
        from .models import AuthenticatorAppDevice, OutboundMessage, PhoneDevice
        from .services import send_signin_code
        from .services.directory import register_hooks

        # The lower modules call up only through these, wired here so that none of them imports a higher one:
        # the outbox dispatches the send task, and the phone model's django-otp challenge hook is a service.
        outbox.send_task = tasks.send_outbound_message
        PhoneDevice.send_challenge = staticmethod(send_signin_code)
        # What a directory leaver, joiner or mover loses or is told here (identity.directory.hooks).
        register_hooks()
        # What a key rotation re-encrypts (devices.services.keys).
        register_encrypted_field(AuthenticatorAppDevice, "encrypted_secret")
        register_encrypted_field(OutboundMessage, "encrypted_body")
        # Read at each scrape of the web site's /metrics (identity.metrics).
        metrics.add_scrape_collector(OutboxCollector())
