from django.urls import path

from . import views, views_access

app_name = "vpn"

# The Duo Auth API v2: served by its own process (config.urls_api) and, for the test client, by the site's URLs too.
api_urlpatterns = [
    path("auth/v2/ping", views.ping, name="ping"),
    path("auth/v2/check", views.check, name="check"),
    path("auth/v2/preauth", views.preauth, name="preauth"),
    path("auth/v2/auth", views.auth, name="auth"),
    path("auth/v2/auth_status", views.auth_status, name="auth_status"),
    path("auth/v2/logo", views.logo, name="logo"),
]

urlpatterns = [
    path("vpn-access/", views_access.vpn_access, name="access"),
    *api_urlpatterns,
]
