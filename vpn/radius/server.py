"""The RADIUS front-end: pyrad decodes and signs packets; the answers come from :mod:`vpn.services`.

Each Access-Request is checked here (known client by network, Message-Authenticator present and right, API-08)
and then answered on a thread pool, so a burst of requests is verified concurrently; the event loop only moves
packets. Anything unexpected while answering (the database gone, a bug) sends an Access-Reject (API-07).

A VPN retransmits a request it had no answer to in time. A copy (same source, ID and Request Authenticator) is never
answered twice (RFC 5080 section 2.2.2): while the first is being answered the copy is dropped, afterwards it gets
the first reply again. Checked twice, an accepted code would be refused as used and counted as a failure (OTP-01).
"""

import asyncio
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.db import close_old_connections
from pyrad import packet
from pyrad.dictionary import Dictionary
from pyrad.server import CheckMessageAuthenticator, ServerPacketError

from identity import sql
from vpn import services

log = logging.getLogger(__name__)
DICTIONARY = Dictionary(str(Path(__file__).with_name("dictionary")))
CLIENTS_REFRESH_SECONDS = 30
# How long a reply is kept for a retransmitted copy of its request (RFC 5080 suggests the client's retry span).
DUPLICATE_SECONDS = 30


class RadiusProtocol(asyncio.DatagramProtocol):
    def __init__(self, *, workers: int):
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="radius")
        self.counts: Counter[str] = Counter()
        self._clients: dict[str, tuple[float, object]] = {}
        # (address, port, id, authenticator) -> (when, reply bytes, or None while it is being answered)
        self._replies: dict[tuple, tuple[float, bytes | None]] = {}
        self._replies_lock = threading.Lock()
        self._purged_at = 0.0
        self.transport = None
        self.loop = None

    def connection_made(self, transport):
        self.transport = transport
        self.loop = asyncio.get_running_loop()

    def _client(self, address: str):
        """The RADIUS client for a source address, cached for a short while (secrets rotate in the admin)."""
        cached = self._clients.get(address)
        if cached and time.monotonic() - cached[0] < CLIENTS_REFRESH_SECONDS:
            return cached[1]
        close_old_connections()
        client = services.radius_client_for(address)
        secret = services.radius_secret(client) if client else None
        self._clients[address] = (time.monotonic(), (client, secret) if client else None)
        return self._clients[address][1]

    def datagram_received(self, data, addr):
        self.loop.run_in_executor(self.pool, self._handle, data, addr)

    def _drop(self, reason: str, addr) -> None:
        self.counts[reason] += 1
        log.warning("RADIUS request from %s dropped: %s (%d so far)", addr[0], reason, self.counts[reason])

    def _first_copy(self, key: tuple, addr) -> bool:
        """Whether this request is new; a copy is dropped, or answered with the reply already sent."""
        now = time.monotonic()
        with self._replies_lock:
            if now - self._purged_at > 1:  # once a second, not per packet, however many are kept
                self._purged_at = now
                for old in [k for k, (at, _) in self._replies.items() if now - at > DUPLICATE_SECONDS]:
                    del self._replies[old]
            seen = self._replies.get(key)
            if seen is None:
                self._replies[key] = (now, None)
                return True
        if seen[1] is None:
            self._drop("retransmission while the first copy is answered", addr)
        else:
            self.loop.call_soon_threadsafe(self.transport.sendto, seen[1], addr)
        return False

    def _handle(self, data: bytes, addr) -> None:
        try:
            known = self._client(addr[0])
        except Exception:
            log.exception("RADIUS client lookup failed; request dropped")
            return self._drop("client lookup failed", addr)
        if known is None:
            return self._drop("unknown client", addr)
        client, secret = known
        try:
            request = packet.AuthPacket(secret=secret, dict=DICTIONARY, packet=data)
            if request.code != packet.AccessRequest:
                return self._drop("not an Access-Request", addr)
            CheckMessageAuthenticator(request, enforce_ma=True)
        except ServerPacketError as error:
            return self._drop(
                "missing or wrong Message-Authenticator" if "Message-Authenticator" in str(error) else str(error), addr
            )
        except Exception:
            return self._drop("undecodable packet", addr)
        key = (addr[0], addr[1], request.id, request.authenticator)
        if not self._first_copy(key, addr):
            return None
        reply = request.CreateReply()
        try:
            close_old_connections()
            sql.without_health_check()  # a dropped connection fails this request: a reject (API-07)
            username = (request.get("User-Name") or [""])[0]
            password = request.PwDecrypt(request["User-Password"][0]) if "User-Password" in request else ""
            state = (request.get("State") or [None])[0]
            with sql.request_transaction():  # one commit per request
                answer = services.radius_authenticate(
                    client, username=username, password=password, state=state, ip=addr[0]
                )
        except Exception:
            log.exception("RADIUS request failed; answered with a reject, never an accept")
            answer = services.RadiusAnswer("reject", services.RADIUS_DENIED)
        reply.code = {
            "accept": packet.AccessAccept,
            "challenge": packet.AccessChallenge,
        }.get(answer.outcome, packet.AccessReject)
        reply.AddAttribute("Reply-Message", answer.message)
        if answer.state:
            reply.AddAttribute("State", answer.state)
        raw = reply.ReplyPacket()
        with self._replies_lock:
            self._replies[key] = (time.monotonic(), raw)
        # asyncio transports are not thread-safe: the loop sends it.
        self.loop.call_soon_threadsafe(self.transport.sendto, raw, addr)
        return None


async def serve(host: str, port: int, *, workers: int, ready=None) -> None:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: RadiusProtocol(workers=workers), local_addr=(host, port)
    )
    log.info("RADIUS listening on %s:%d with %d workers", host, port, workers)
    if ready:
        ready()
    try:
        await asyncio.Event().wait()
    finally:
        transport.close()
