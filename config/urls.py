from django.urls import include, path

from helpdesk.admin import site as staff_admin_site
from identity.views import home

urlpatterns = [
    path("", home, name="home"),
    path("account/", include("identity.urls")),
    path("", include("devices.urls")),
    path("admin/", staff_admin_site.urls),
    path("", include("vpn.urls")),
]
