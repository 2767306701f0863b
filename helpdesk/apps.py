from django.apps import AppConfig


class HelpdeskConfig(AppConfig):
    name = "helpdesk"
    verbose_name = "Help desk"

    def ready(self):
        # The audit log's sentences read the desk's code words (identity.events): each action by its own phrase,
        # kept beside its name in helpdesk.actions, and each identity-check method by its label.
        from identity import events

        from .actions import ACTIONS
        from .models import IdentityCheck

        events.name_values("action", {key: action.phrase for key, action in ACTIONS.items()})
        methods = dict(IdentityCheck.Method.choices)
        for key in ("method", "identity_check", "identity_check_method"):
            events.name_values(key, methods)
