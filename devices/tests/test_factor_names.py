"""One factor vocabulary: the kinds, the device models and the audit events use the same names."""

from django.apps import apps
from django_otp.models import Device

from devices import kinds


def test_every_device_model_names_its_factor_from_the_vocabulary():
    names = set()
    for model in apps.get_app_config("devices").get_models():
        if issubclass(model, Device):
            # A model whose rows differ (a security key or a passkey) lists the names its rows give.
            names |= set(getattr(model, "factor_names", (model.factor_name,)))
    assert names == set(kinds.FACTORS)


def test_every_kind_owns_factors_from_the_vocabulary():
    for kind in kinds.KINDS.values():
        assert kind.factors and set(kind.factors) <= set(kinds.FACTORS), kind.key
        assert bool(kind.phone_channels) == (kinds.PHONE_FACTOR in kind.factors), kind.key


def test_every_device_is_what_identity_signs_in_with():
    from identity.factors import ChallengeFactor, SecondFactor

    for model in apps.get_app_config("devices").get_models():
        if issubclass(model, Device):
            assert isinstance(model(), SecondFactor), model
    assert isinstance(apps.get_model("devices.PhoneDevice")(), ChallengeFactor)
    assert not isinstance(apps.get_model("devices.AuthenticatorAppDevice")(), ChallengeFactor)
