"""The Auth API's process serves the Auth API, the health probes and its own metrics: no page of the site."""

from django.urls import include, path

from config import health
from identity.scrape import metrics_view
from vpn.urls import api_urlpatterns

urlpatterns = [
    path("", include((api_urlpatterns, "vpn"))),
    # config.health.middleware answers the probes first; listed here for the test client and any other server.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
]

# Any other path is not the Auth API's, and an error is answered as Duo answers one: Duo's error shape, not the site's
# pages.
handler404 = "vpn.views.not_found"
handler500 = "vpn.views.server_error"
