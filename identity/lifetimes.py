"""How long something lasts, in the words a person reads. Every lifetime shown comes from its setting."""

from datetime import timedelta


def in_words(lifetime: timedelta) -> str:
    """``timedelta(hours=24)`` -> "24 hours", ``timedelta(minutes=90)`` -> "90 minutes", whole minutes up."""
    minutes = max(1, -(-int(lifetime.total_seconds()) // 60))
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" if hours == 1 else f"{hours} hours"
    return "1 minute" if minutes == 1 else f"{minutes} minutes"
