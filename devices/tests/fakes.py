"""The one thing tests fake: the outside SMS/voice provider, behind the gateway interface."""

import re
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Delivered:
    channel: str
    number: str
    text: str

    @property
    def code(self) -> str:
        digits = re.sub(r"[^0-9]", "", self.text.split("code is:")[-1]) if "code is:" in self.text else None
        return digits[:6] if digits else re.search(r"\b(\d{6})\b", self.text).group(1)


class RecordingGateway:
    """Keeps what would have been sent, in this process, for tests to read the codes back."""

    delivered: list[Delivered] = []
    _lock = threading.Lock()
    _ids = 0

    def _record(self, channel, number, text) -> str:
        with self._lock:
            type(self).delivered.append(Delivered(channel, number, text))
            type(self)._ids += 1
            return f"rec-{channel}-{type(self)._ids}"

    def send_sms(self, number: str, text: str) -> str:
        return self._record("sms", number, text)

    def place_call(self, number: str, text: str) -> str:
        return self._record("voice", number, text)

    @classmethod
    def last_to(cls, number: str) -> Delivered:
        return [d for d in cls.delivered if d.number == number][-1]
