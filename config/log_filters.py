"""Filters the LOGGING setting names. Logging is set up before the apps load, so these import nothing of ours but
identity.request_id, which is standard library only."""

import logging
import re
import threading
import time

from identity import request_id


class QuietProbes(logging.Filter):
    """Drops django.request's record of a 503 from /readyz: "not ready" is the probe's answer, and a load balancer
    asks every few seconds. Any other status from it (a 500 is a bug) is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return not (getattr(record, "status_code", None) == 503 and getattr(request, "path_info", "") == "/readyz")


class RequestId(logging.Filter):
    """Gives every record the id of the request or task it was logged for ("-" outside of one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


class RepeatLimit(logging.Filter):
    """A flood of the same warning does not flood the log: per logger and message template, at most ``limit`` records
    of WARNING or above every ``seconds``; the first one after a quiet spell says how many were left out."""

    def __init__(self, limit: int = 10, seconds: float = 60.0):
        super().__init__()
        self.limit, self.seconds = limit, seconds
        self._lock = threading.Lock()
        self._seen: dict[tuple, list] = {}  # (logger, template) -> [window start, count, suppressed]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or self.limit <= 0:
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is None:
                if len(self._seen) > 10_000:  # templates are few; a message built without one must not grow this
                    self._seen.clear()
                seen = self._seen[key] = [now, 0, 0]
            announced = 0
            if now - seen[0] >= self.seconds:
                announced, seen[:] = seen[2], [now, 0, 0]
            seen[1] += 1
            if seen[1] > self.limit:
                seen[2] += 1
                return False
        if announced:
            record.msg, record.args = f"{record.getMessage()} ({announced} more like this not logged)", None
            record.suppressed = announced
        return True


# A phone number as E.164 or national digits (with or without the usual separators), never an IP address or a time.
_PHONE = re.compile(r"(?<![\w.:/])(?:\+\d[\d ()-]{6,18}\d|\(?\d{3}\)?[ -]?\d{3}[ -]?\d{4})(?![\w.:])")
# A status code is no secret.
_SECRET_NAME = r"[\w-]*(?:secret|token|(?<!status_)code|password|passwd|otp|seed|authorization|api[_-]?key|session[_-]?key|sessionid)[\w-]*"
# "code=123456", "token: abc", '"password": "x"': the value after a secret's name.
_SECRET_VALUE = re.compile(rf"(?i)\b({_SECRET_NAME})(['\"]?\s*[=:]\s*)(['\"]?)[^\s,;'\"&)}}]+")
_SECRET_ATTRIBUTE = re.compile(rf"(?i)^{_SECRET_NAME}$")
_MASK = "[masked]"


def mask_phone(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return f"[phone ...{digits[-2:]}]"


def mask(text: str) -> str:
    text = _SECRET_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{_MASK}", text)
    return _PHONE.sub(mask_phone, text)


class MaskSecrets(logging.Filter):
    """A safety net under OTP-09: code never logs a secret, a code, a token or a whole phone number, and should it
    slip, the line that reaches the handler has phone numbers cut to their last two digits, the value after a
    secret's name masked, and any extra field named like a secret replaced."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "django.db.backends" and isinstance(record.args, tuple) and len(record.args) == 4:
            # (duration, sql, params, alias) at DEBUG: the parameters bare, with no column name to know them by.
            record.args, record.params = (*record.args[:2], _MASK, record.args[3]), _MASK
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's to report, not ours to hide
            return True
        masked = mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        for name, value in list(vars(record).items()):
            if name in self._STANDARD or name == "request_id":
                continue
            if _SECRET_ATTRIBUTE.match(name):
                setattr(record, name, _MASK)
            elif isinstance(value, str):
                setattr(record, name, mask(value))
        return True


class RouteNotPath(logging.Filter):
    """django.request names a refused request by its path ("Not Found: /activate/<a link's token>/"): ours names the
    URL pattern instead, as the request's own line does."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if request is not None and isinstance(record.args, tuple) and len(record.args) == 2:
            match = getattr(request, "resolver_match", None)
            record.args = (record.args[0], f"/{match.route}" if match is not None else "(no route)")
        return True
