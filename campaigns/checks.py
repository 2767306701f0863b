"""A deploy check: a campaign must not let people onto the VPN without a second factor for good."""

from django.core.checks import Info, Tags, Warning, register
from django.db import DatabaseError
from django.db.models import Q


def campaigns_letting_people_in_for_good():
    """The open campaigns that let people in with the password alone after their deadline (passed or to come), or
    before a deadline they do not have."""
    from .models import Campaign

    allow = Campaign.Policy.ALLOW_PASSWORD_ALONE
    return Campaign.objects.filter(closed_at=None).filter(
        Q(policy_after_deadline=allow, deadline__isnull=False) | Q(policy_before_deadline=allow, deadline__isnull=True)
    )


@register(Tags.security, deploy=True)
def check_password_alone_campaigns(app_configs, **kwargs):
    """Warns (campaigns.W001) while any open campaign lets people in without a second factor after its deadline,
    or has no deadline and lets them in before it. Reads the database; where it cannot, says so (campaigns.I001)."""
    try:
        names = list(campaigns_letting_people_in_for_good().values_list("name", flat=True)[:10])
    except DatabaseError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return [
            Info(
                f"The enrollment campaigns were not checked: {reason}",
                hint="Run manage.py check --deploy where the database is reachable.",
                id="campaigns.I001",
            )
        ]
    if not names:
        return []
    return [
        Warning(
            "These enrollment campaigns let people onto the VPN with their password alone, without a second "
            f"factor, after their deadline or with no deadline: {', '.join(names)}.",
            hint="Set each one's policy after the deadline to 'Require enrollment' and give it a deadline, or close "
            "it, in the admin (Enrollment campaigns).",
            id="campaigns.W001",
        )
    ]
