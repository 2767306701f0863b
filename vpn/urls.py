from django.urls import path

from . import views

app_name = "vpn"

urlpatterns = [
    path("ping", views.ping, name="ping"),
    path("check", views.check, name="check"),
    path("preauth", views.preauth, name="preauth"),
    path("auth", views.auth, name="auth"),
    path("auth_status", views.auth_status, name="auth_status"),
    path("logo", views.logo, name="logo"),
]
