from django.conf import settings


def institution(request):
    return {"INSTITUTION_NAME": settings.INSTITUTION_NAME, "HELP_DESK_CONTACT": settings.HELP_DESK_CONTACT}
