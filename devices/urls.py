from django.urls import path

from .views import keys, links, my_devices, wizard

app_name = "devices"

urlpatterns = [
    path("enroll/", wizard.start, name="start"),
    path("enroll/device-type/", wizard.device_type, name="device_type"),
    path("enroll/<int:pk>/phone/", wizard.phone, name="phone"),
    path("enroll/<int:pk>/verify-phone/", wizard.verify_phone, name="verify_phone"),
    path("enroll/<int:pk>/platform/", wizard.platform, name="platform"),
    path("enroll/<int:pk>/install/", wizard.install, name="install"),
    path("enroll/<int:pk>/activate/", wizard.activate, name="activate"),
    path("enroll/<int:pk>/qr.svg", wizard.qr_code, name="qr_code"),
    path("enroll/<int:pk>/email-link/", wizard.email_activation_link, name="email_activation_link"),
    path("enroll/<int:pk>/security-key/", keys.security_key_step, name="security_key"),
    path("enroll/<int:pk>/security-key/options/", keys.security_key_options, name="security_key_options"),
    path("enroll/<int:pk>/passkey/", keys.passkey_step, name="passkey"),
    path("enroll/<int:pk>/passkey/options/", keys.passkey_options, name="passkey_options"),
    path("enroll/<int:pk>/done/", wizard.success, name="success"),
    path("activate/", links.activation_landing, name="activation_landing"),
    path("activate/<str:token>/", links.activation_link, name="activation_link"),
    path("security-key/sign-in/options/", keys.sign_in_options, name="security_key_sign_in_options"),
    path("security-key/sign-in/", keys.sign_in, name="security_key_sign_in"),
    path("passkey/sign-in/options/", keys.passwordless_options, name="passwordless_options"),
    path("passkey/sign-in/", keys.passwordless_sign_in, name="passwordless_sign_in"),
    path("devices/", my_devices.my_devices, name="my_devices"),
    path("devices/<int:pk>/rename/", my_devices.rename, name="rename"),
    path("devices/<int:pk>/remove/", my_devices.remove, name="remove"),
    path("devices/<int:pk>/phone-codes/", my_devices.enable_phone_codes, name="enable_phone_codes"),
    path("devices/<int:pk>/new-phone/", my_devices.reactivate, name="reactivate"),
    path("devices/<int:pk>/lost/", my_devices.report_lost, name="report_lost"),
    path("devices/backup-codes/", my_devices.backup_codes, name="backup_codes"),
]
