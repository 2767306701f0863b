from django.urls import include, path

from config import health
from identity.admin_site import site as staff_admin_site
from identity.scrape import metrics_view
from identity.views import home
from reports.urls import urls_for as report_urls

urlpatterns = [
    # The Auth API has its own process (config.urls_api); its paths stay here for the test client.
    path("", include("vpn.urls")),
    # config.health.middleware answers these first; listed here for the test client and any other server.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", home, name="home"),
    path("metrics", metrics_view, name="metrics"),
    path("account/", include("identity.urls")),
    path("scim/v2/", include("identity.directory.scim.urls")),
    path("", include("devices.urls")),
    path("admin/reports/", include(report_urls(staff_admin_site))),
    path("admin/", staff_admin_site.urls),
]

# The site's own error pages, in its layout (config/error_pages.py).
handler400 = "config.error_pages.bad_request"
handler403 = "config.error_pages.permission_denied"
handler404 = "config.error_pages.page_not_found"
handler500 = "config.error_pages.server_error"
