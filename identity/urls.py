from django.urls import path

from . import views

app_name = "identity"

urlpatterns = [
    path("sign-in/", views.sign_in, name="sign_in"),
    path("sign-in/second-factor/", views.second_factor, name="second_factor"),
    path("sign-in/confirm/", views.confirm_identity, name="confirm_identity"),
    path("sign-out/", views.sign_out, name="sign_out"),
]
