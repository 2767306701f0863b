from django.urls import path, re_path

from . import views

app_name = "scim"
urlpatterns = [
    path("Users", views.users, name="users"),
    path("Users/.search", views.users_search, name="users_search"),
    path("Users/<str:scim_id>", views.user, name="user"),
    path("Groups", views.groups, name="groups"),
    path("Groups/<str:group_id>", views.group, name="group"),
    path("ServiceProviderConfig", views.service_provider_config, name="service_provider_config"),
    path("ResourceTypes", views.resource_types, name="resource_types"),
    path("ResourceTypes/<str:name>", views.resource_types, name="resource_type"),
    path("Schemas", views.schemas, name="schemas"),
    path("Schemas/<str:name>", views.schemas, name="schema"),
    re_path(r"^(?P<rest>.*)$", views.not_found),
]
