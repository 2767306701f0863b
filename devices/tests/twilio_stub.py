"""A local HTTP server standing in for Twilio's REST API, so the real ``twilio`` library makes real requests.

It answers the calls we make (create a Message or a Call, and list them by
recipient) and records what it accepted. Tests script its answers: a list of
HTTP statuses to give before accepting, or ``hang`` to hold a request open until
the client goes away (a worker killed mid-request never gets an answer, and
nothing is accepted). ``answer_delay`` makes it slow to answer after it has
accepted (per kind, "sms" or "voice"): past the client's timeout the message is
out, and the client does not know it.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Accepted:
    kind: str  # "sms" or "voice"
    to: str
    from_: str
    body: str  # the SMS text, or the TwiML of the call
    sid: str
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class StubState:
    accepted: list[Accepted] = field(default_factory=list)
    requests: int = 0
    script: list = field(default_factory=list)  # statuses (int) or "hang", consumed one per request
    lock: threading.Lock = field(default_factory=threading.Lock)
    hanging: threading.Event = field(default_factory=threading.Event)
    answer_delay: dict = field(default_factory=dict)  # kind -> seconds to wait after accepting, before answering
    lookups: int = 0  # list requests (what a client asks when an answer was lost)


ERROR_BODIES = {
    400: {"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400},
    401: {"code": 20003, "message": "Authenticate", "status": 401},
    429: {"code": 20429, "message": "Too Many Requests", "status": 429},
    500: {"code": 20500, "message": "Internal Server Error", "status": 500},
    503: {"code": 20503, "message": "Service Unavailable", "status": 503},
}


def _handler(state: StubState):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802  (http.server's naming)
            length = int(self.headers.get("Content-Length", 0))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            with state.lock:
                state.requests += 1
                step = state.script.pop(0) if state.script else 201
            if step == "hang":
                state.hanging.set()
                self._hold_until_client_leaves()
                return
            if step != 201:
                self._answer(step, ERROR_BODIES.get(step, {"code": 20000 + step, "message": "error", "status": step}))
                return
            if self.path.endswith("/Messages.json"):
                kind, body, prefix = "sms", form.get("Body", ""), "SM"
            elif self.path.endswith("/Calls.json"):
                kind, body, prefix = "voice", form.get("Twiml", ""), "CA"
            else:
                self._answer(404, {"code": 20404, "message": "Not Found", "status": 404})
                return
            with state.lock:
                sid = f"{prefix}{len(state.accepted) + 1:032d}"
                state.accepted.append(Accepted(kind, form.get("To", ""), form.get("From", ""), body, sid))
            if state.answer_delay.get(kind):
                time.sleep(state.answer_delay[kind])
            self._answer(201, {"sid": sid, "status": "queued", "to": form.get("To"), "from": form.get("From")})

        def do_GET(self):  # noqa: N802
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            kind, key = ("sms", "messages") if url.path.endswith("/Messages.json") else ("voice", "calls")
            with state.lock:
                state.lookups += 1
                records = [
                    a
                    for a in reversed(state.accepted)
                    if a.kind == kind and a.to == query.get("To", a.to) and a.from_ == query.get("From", a.from_)
                ]
            listed = [
                {
                    "sid": a.sid,
                    "to": a.to,
                    "from": a.from_,
                    **({"body": a.body} if kind == "sms" else {}),
                    "status": "sent" if kind == "sms" else "completed",
                    "date_created": format_datetime(a.created),
                }
                for a in records[: int(query.get("PageSize", 50))]
            ]
            self._answer(
                200,
                {
                    key: listed,
                    "page": 0,
                    "page_size": len(listed),
                    "start": 0,
                    "end": len(listed),
                    "uri": self.path,
                    "first_page_uri": self.path,
                    "next_page_uri": None,
                    "previous_page_uri": None,
                },
            )

        def _hold_until_client_leaves(self) -> None:
            self.connection.settimeout(0.2)
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    if self.connection.recv(1, 0x2) == b"":  # MSG_PEEK: empty means the client closed
                        return
                except TimeoutError:
                    continue
                except OSError:
                    return

    return Handler


class TwilioStub:
    def __init__(self):
        self.state = StubState()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address
        return f"http://{host}:{port}"

    def start(self) -> "TwilioStub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, *steps) -> None:
        with self.state.lock:
            self.state.script[:] = list(steps)

    @property
    def accepted(self) -> list[Accepted]:
        with self.state.lock:
            return list(self.state.accepted)
