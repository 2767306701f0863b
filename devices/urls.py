from django.urls import path

from . import views, views_keys

app_name = "devices"

urlpatterns = [
    path("enroll/", views.start, name="start"),
    path("enroll/device-type/", views.device_type, name="device_type"),
    path("enroll/<int:pk>/phone/", views.phone, name="phone"),
    path("enroll/<int:pk>/verify-phone/", views.verify_phone, name="verify_phone"),
    path("enroll/<int:pk>/platform/", views.platform, name="platform"),
    path("enroll/<int:pk>/install/", views.install, name="install"),
    path("enroll/<int:pk>/activate/", views.activate, name="activate"),
    path("enroll/<int:pk>/qr.svg", views.qr_code, name="qr_code"),
    path("enroll/<int:pk>/email-link/", views.email_activation_link, name="email_activation_link"),
    path("enroll/<int:pk>/security-key/", views_keys.security_key_step, name="security_key"),
    path("enroll/<int:pk>/security-key/options/", views_keys.security_key_options, name="security_key_options"),
    path("enroll/<int:pk>/done/", views.success, name="success"),
    path("activate/", views.activation_landing, name="activation_landing"),
    path("activate/<str:token>/", views.activation_link, name="activation_link"),
    path("security-key/sign-in/options/", views_keys.sign_in_options, name="security_key_sign_in_options"),
    path("security-key/sign-in/", views_keys.sign_in, name="security_key_sign_in"),
    path("devices/", views.my_devices, name="my_devices"),
    path("devices/<int:pk>/rename/", views.rename, name="rename"),
    path("devices/<int:pk>/remove/", views.remove, name="remove"),
    path("devices/<int:pk>/phone-codes/", views.enable_phone_codes, name="enable_phone_codes"),
    path("devices/<int:pk>/new-phone/", views.reactivate, name="reactivate"),
    path("devices/<int:pk>/lost/", views.report_lost, name="report_lost"),
    path("devices/backup-codes/", views.backup_codes, name="backup_codes"),
]
