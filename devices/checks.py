from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security)
def check_encryption_keys(app_configs, **kwargs):
    problems = []
    for index, key in enumerate(settings.FACTOR_ENCRYPTION_KEYS):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            problems.append(
                Error(
                    f"FACTOR_ENCRYPTION_KEYS[{index}] is not a Fernet key (32 bytes, urlsafe base64).",
                    hint="python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
                    id="devices.E001",
                )
            )
    return problems


@register(Tags.security, deploy=True)
def check_encryption_keys_set(app_configs, **kwargs):
    if settings.FACTOR_ENCRYPTION_KEYS:
        return []
    return [
        Error(
            "FACTOR_ENCRYPTION_KEYS is not set: factor secrets would be encrypted with a key derived "
            "from SECRET_KEY (OTP-08).",
            id="devices.E101",
        )
    ]
