"""The RADIUS front-end: pyrad decodes and signs packets; the answers come from :mod:`vpn.services`.

Each Access-Request is checked here (known client by network, Message-Authenticator as that client's setting asks,
API-08) and answered on a worker thread, so a burst of requests is verified concurrently; the event loop only moves
packets. Before a datagram is queued its source must fall in an enabled client's network, matched in memory
(:class:`ClientNetworks`, reloaded every ``CLIENTS_REFRESH_SECONDS``): spoofed packets from anywhere else are dropped
at once, with no database query, and take no place in the queue. The requests wait for a worker in a bounded queue
taken in turn by client and user name (API-09): a flood under one name or many (a password check costs a second of
CPU) cannot hold another person's request past the VPN's timeout, nor one client's requests another's.
A request that finds the queue full, or waited longer than ``max_wait``, gets no reply: the VPN retransmits it or asks
its second server, where an Access-Reject would end the person's attempt with "denied". Anything unexpected while
answering (the database gone, a bug) gets no reply either, for the same reason, and never an accept (API-07); it is
counted and logged.

A VPN retransmits a request it had no answer to in time. A copy (same source, ID and Request Authenticator) is never
answered twice (RFC 5080 section 2.2.2): while the first is being answered the copy is dropped, afterwards it gets
the first reply again. Checked twice, an accepted code would be refused as used and counted as a failure (OTP-01).
A request that failed is forgotten, so its retransmission is answered afresh.

Status-Server (RFC 5997) is answered too, so a VPN or a load balancer can probe this server as it probes FreeRADIUS:
from a known client, with a valid Message-Authenticator whatever the client's setting (the RFC requires one), an
Access-Accept signed with one. It waits for a worker like any request, so a server too busy to answer requests does
not claim to be up, but reads no person and writes no audit event.
"""

import asyncio
import ipaddress
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

from django.db import close_old_connections, transaction
from pyrad import packet
from pyrad.dictionary import Dictionary
from pyrad.server import CheckMessageAuthenticator, ServerPacketError

from identity import metrics, request_id, sql
from identity.directory import pace
from vpn import services
from vpn.models import RadiusClient

log = logging.getLogger(__name__)
DICTIONARY = Dictionary(str(Path(__file__).with_name("dictionary")))
CLIENTS_REFRESH_SECONDS = 30
# Source addresses whose client (and secret) a worker keeps: only addresses inside a client's network get this far,
# and a wide network (a /16 pool) must not grow it without end.
CLIENTS_CACHED = 4096
# How long a reply is kept for a retransmitted copy of its request (RFC 5080 suggests the client's retry span).
DUPLICATE_SECONDS = 30
# Requests of one user name waiting or being answered at once: a sign-in is one request at a time, and its copies.
PER_NAME = 2
# A drop reason is logged at most this often (with its count so far): a flood must not flood the log too.
DROP_LOG_SECONDS = 10
USER_NAME = 1  # the attribute's type (RFC 2865)
REPLY_MESSAGE_BYTES = 253  # an attribute's value at most (RFC 2865 section 5)
# Metrics: a check's result by the answer's outcome (identity.metrics, door "radius"), and the reasons a drop is
# counted under (any other, e.g. pyrad's words about a malformed packet, is counted as "bad packet").
RESULTS = {"accept": "allow", "challenge": "challenge", "reject": "deny"}
NO_ROOM = "overloaded: no room in the queue"
NOT_A_REQUEST = "not an Access-Request or Status-Server"
CLIENT_LOOKUP_FAILED = "client lookup failed"
UNKNOWN_CLIENT = "unknown client"
DROP_REASONS = {
    NO_ROOM,
    "overloaded: waited too long for a worker",
    "retransmission while the first copy is answered",
    NOT_A_REQUEST,
    "missing or wrong Message-Authenticator",
    "undecodable packet",
    "Proxy-State without Message-Authenticator",
    CLIENT_LOOKUP_FAILED,
    UNKNOWN_CLIENT,
}


def _password(request: Any) -> str | None:
    """The User-Password in clear, "" without one, None when it is malformed: its length is not a multiple of 16
    octets (RFC 2865 section 5.2), which pyrad cannot undo."""
    if "User-Password" not in request:
        return ""
    try:
        password: str = request.PwDecrypt(request["User-Password"][0])
    except packet.PacketError:
        return None
    return password


Address = tuple[Any, ...]  # a datagram's source, as asyncio gives it: (host, port), and more for IPv6
Item = TypeVar("Item")


def reply_messages(text: str) -> list[str]:
    """``text`` as Reply-Message values: an attribute holds at most ``REPLY_MESSAGE_BYTES`` octets of UTF-8, so a
    longer message (a help desk's contact details make some long) goes in several, split after a space where
    there is one (RFC 2865 section 5.18: several are shown in their order). Each piece keeps its trailing space,
    so a VPN that joins them shows the words apart."""
    pieces = []
    while len(text.encode()) > REPLY_MESSAGE_BYTES:
        fits = len(text.encode()[:REPLY_MESSAGE_BYTES].decode(errors="ignore"))  # whole characters only
        space = text.rfind(" ", 0, fits)
        cut = space + 1 if space > 0 else fits
        pieces.append(text[:cut])
        text = text[cut:]
    return [*pieces, text] if text else pieces


def _reply(request: Any, answer: services.RadiusAnswer) -> bytes:
    """The signed reply to ``request`` (a Message-Authenticator first, whatever the request had)."""
    reply = request.CreateReply()
    reply.code = {
        "accept": packet.AccessAccept,
        "challenge": packet.AccessChallenge,
    }.get(answer.outcome, packet.AccessReject)
    for piece in reply_messages(answer.message):
        reply.AddAttribute("Reply-Message", piece)
    if answer.state:
        reply.AddAttribute("State", answer.state)
    raw: bytes = reply.ReplyPacket()
    return raw


class ClientNetworks:
    """The enabled RADIUS clients' networks, in memory: which client (by id) a datagram's source falls in (the
    narrowest network holding it), without a database query. :meth:`load` reads them (one query); :meth:`keep_fresh`,
    on a thread of its own, reads them at once and then every ``CLIENTS_REFRESH_SECONDS``, so a client added or
    disabled in the admin is seen within that time; ``first_read`` is set once its first try is over. A worker
    still reads the client's row and secret before it answers (:meth:`RadiusProtocol._client`): this is the gate
    before the queue, not the check."""

    def __init__(self, networks: Iterable[tuple[int, str]] | None = None) -> None:
        self.loaded = False
        self.first_read = threading.Event()
        self._networks: tuple[tuple[services.Network, int], ...] = ()
        if networks is not None:
            self.replace(networks)

    def replace(self, networks: Iterable[tuple[int, str]]) -> None:
        """Hold ``(client id, network)`` pairs from now on."""
        self._networks = tuple((ipaddress.ip_network(network), pk) for pk, network in networks)
        self.loaded = True

    def load(self) -> None:
        close_old_connections()
        self.replace(RadiusClient.objects.filter(enabled=True).values_list("pk", "network"))

    def keep_fresh(self) -> None:
        while True:
            try:
                self.load()
            except Exception:  # the database away: the networks last read stay until it is back
                log.exception("RADIUS clients not read; the networks read before (if any) stay")
            self.first_read.set()
            time.sleep(CLIENTS_REFRESH_SECONDS)

    def match(self, address: str) -> int | None:
        """The id of the client whose network holds ``address`` (the narrowest), or None."""
        return services.radius_client_among(address, self._networks)


def user_name_of(data: bytes) -> bytes:
    """The raw User-Name of a packet, or b"": read before any check, only to take requests in turn."""
    at = 20
    while at + 2 <= len(data):
        kind, length = data[at], data[at + 1]
        if length < 2:
            break
        if kind == USER_NAME:
            return data[at + 2 : at + length].lower()
        at += length
    return b""


class WorkQueue(Generic[Item]):
    """Requests waiting for a worker, at most ``limit``, handed out in turn by name (API-09): the server names a
    request by its client and its raw User-Name, so one client's packets never take another's places.

    Each name with requests waiting takes one turn in a round: a flood under one name waits behind everyone else's
    next request, and holds at most ``PER_NAME`` places (waiting or being answered). ``put`` says at once whether
    there was room.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self._ready = threading.Condition()
        self._waiting: OrderedDict[Hashable, list[tuple[float, Item]]] = (
            OrderedDict()
        )  # name -> [(queued at, item)], names in turn order
        self._held: Counter[Hashable] = Counter()  # name -> waiting or being answered
        self._size = 0

    def put(self, name: Hashable, item: Item) -> bool:
        with self._ready:
            if self._size >= self.limit or self._held[name] >= PER_NAME:
                return False
            self._waiting.setdefault(name, []).append((time.monotonic(), item))
            self._held[name] += 1
            self._size += 1
            self._ready.notify()
            return True

    def take(self) -> tuple[Hashable, float, Item]:
        with self._ready:
            while not self._waiting:
                self._ready.wait()
            name, items = next(iter(self._waiting.items()))
            queued_at, item = items.pop(0)
            if items:
                self._waiting.move_to_end(name)  # its next request waits for the other names' turns
            else:
                del self._waiting[name]
            self._size -= 1
            return name, queued_at, item

    def done(self, name: Hashable) -> None:
        with self._ready:
            self._held[name] -= 1
            if not self._held[name]:
                del self._held[name]


class RadiusProtocol(asyncio.DatagramProtocol):
    # Set by connection_made, before the first datagram: no worker sends a reply before then.
    transport: asyncio.DatagramTransport
    loop: asyncio.AbstractEventLoop

    def __init__(
        self, *, workers: int, networks: ClientNetworks, queue: int | None = None, max_wait: float = 5.0
    ) -> None:
        self.queue: WorkQueue[tuple[bytes, Address]] = WorkQueue(queue or 4 * workers)
        self.networks = networks
        self.max_wait = max_wait
        self.counts: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}
        # address -> (when read, the client and its secret, or None); at most CLIENTS_CACHED, the oldest go first
        self._clients: OrderedDict[str, tuple[float, tuple[RadiusClient, bytes] | None]] = OrderedDict()
        self._clients_lock = threading.Lock()
        # (address, port, id, authenticator) -> (when, reply bytes, or None while it is being answered)
        self._replies: dict[tuple, tuple[float, bytes | None]] = {}
        self._replies_lock = threading.Lock()
        self._purged_at = 0.0
        for n in range(workers):
            threading.Thread(target=self._work, name=f"radius-{n}", daemon=True).start()

    def connection_made(self, transport: asyncio.DatagramTransport) -> None:  # type: ignore[override]
        self.transport = transport
        self.loop = asyncio.get_running_loop()

    def _client(self, address: str) -> tuple[RadiusClient, bytes] | None:
        """The RADIUS client for a source address, cached for a short while (secrets rotate in the admin); only
        addresses inside a client's network are asked about, and at most ``CLIENTS_CACHED`` of them kept."""
        with self._clients_lock:
            cached = self._clients.get(address)
        if cached and time.monotonic() - cached[0] < CLIENTS_REFRESH_SECONDS:
            return cached[1]
        close_old_connections()
        client = services.radius_client_for(address)
        known = (client, services.radius_secret(client)) if client else None
        with self._clients_lock:
            self._clients[address] = (time.monotonic(), known)
            self._clients.move_to_end(address)
            while len(self._clients) > CLIENTS_CACHED:
                self._clients.popitem(last=False)
        return known

    def datagram_received(self, data: bytes, addr: Address) -> None:
        # On the event loop: no database here. A source outside every client's network is dropped before it can
        # take a place in the queue or a name's turn; the rest queue by client and name.
        if not self.networks.loaded:
            return self._drop(CLIENT_LOOKUP_FAILED, addr)
        client = self.networks.match(addr[0])
        if client is None:
            return self._drop(UNKNOWN_CLIENT, addr)
        if not self.queue.put((client, user_name_of(data)), (data, addr)):
            self._drop(NO_ROOM, addr)
        return None

    def _work(self) -> None:
        while True:
            name, queued_at, (data, addr) = self.queue.take()
            try:
                if time.monotonic() - queued_at > self.max_wait:
                    self._drop("overloaded: waited too long for a worker", addr)
                else:
                    # Timed from its arrival: the wait for a worker is part of what the VPN waits for.
                    with request_id.bound(request_id.new()):  # its log lines and audit event share it
                        self._handle(data, addr, started=time.perf_counter() - (time.monotonic() - queued_at))
            except Exception:  # a worker must outlive any one request
                log.exception("RADIUS worker error; request dropped")
            finally:
                self.queue.done(name)

    def _drop(self, reason: str, addr: Address) -> None:
        self.counts[reason] += 1
        metrics.count(metrics.RADIUS_DROPPED, reason if reason in DROP_REASONS else "bad packet")
        now = time.monotonic()
        if now - self._logged_at.get(reason, -DROP_LOG_SECONDS) >= DROP_LOG_SECONDS:
            self._logged_at[reason] = now
            log.warning("RADIUS request from %s dropped: %s (%d so far)", addr[0], reason, self.counts[reason])

    def _first_copy(self, key: tuple, addr: Address) -> bool:
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

    def _decode(self, data: bytes, addr: Address, client: RadiusClient, secret: bytes) -> Any:
        """The Access-Request or Status-Server, if its Message-Authenticator is as the client's setting asks (API-08)
        and always for a Status-Server (RFC 5997 section 3); else None."""
        try:
            request = packet.AuthPacket(secret=secret, dict=DICTIONARY, packet=data)
            if request.code not in (packet.AccessRequest, packet.StatusServer):
                return self._drop(NOT_A_REQUEST, addr)
            # A wrong one is always refused; a missing one unless the client's setting allows it.
            CheckMessageAuthenticator(
                request,
                enforce_ma=client.message_authenticator_required or request.code == packet.StatusServer,
            )
        except ServerPacketError as error:
            return self._drop(
                "missing or wrong Message-Authenticator" if "Message-Authenticator" in str(error) else str(error), addr
            )
        except Exception:
            return self._drop("undecodable packet", addr)
        if not request.message_authenticator and "Proxy-State" in request:
            # FreeRADIUS's limit_proxy_state: Blast-RADIUS forges a reply through an attacker's Proxy-State.
            return self._drop("Proxy-State without Message-Authenticator", addr)
        return request

    def _handle(self, data: bytes, addr: Address, *, started: float) -> None:
        began = time.monotonic()
        try:
            known = self._client(addr[0])
        except Exception:
            log.exception("RADIUS client lookup failed; request dropped")
            return self._drop(CLIENT_LOOKUP_FAILED, addr)
        if known is None:
            return self._drop(UNKNOWN_CLIENT, addr)
        client, secret = known
        request = self._decode(data, addr, client, secret)
        if request is None:
            return None
        if request.code == packet.StatusServer:
            return self._answer_status(request, addr)
        key = (addr[0], addr[1], request.id, request.authenticator)
        if not self._first_copy(key, addr):
            return None
        try:
            close_old_connections()
            sql.replace_if_ended()  # a connection the server ended is replaced; one lost silently fails: no reply (API-07)
            username = (request.get("User-Name") or [""])[0]
            password = _password(request)
            state = (request.get("State") or [None])[0]
            with transaction.atomic():  # one commit per request
                answer = services.radius_authenticate(
                    client, username=username, password=password, state=state, ip=addr[0]
                )
            raw = _reply(request, answer)
        except Exception:
            self.counts["internal error"] += 1
            metrics.vpn_check("radius", "error", started)
            log.exception(
                "RADIUS request failed; no reply sent, never an accept (%d so far)", self.counts["internal error"]
            )
            with self._replies_lock:
                self._replies.pop(key, None)  # its retransmission is answered afresh
            return None
        metrics.vpn_check("radius", RESULTS.get(answer.outcome, "deny"), started)
        log.info(
            "RADIUS request from %s: %s in %.1f ms",
            addr[0],
            answer.outcome,
            (time.monotonic() - began) * 1000,
            extra={"client": client.name, "outcome": answer.outcome},
        )
        with self._replies_lock:
            self._replies[key] = (time.monotonic(), raw)
        # asyncio transports are not thread-safe: the loop sends it, after the answer's pace if it has one.
        wait = began + answer.not_before - time.monotonic()
        if wait > 0:
            self.loop.call_soon_threadsafe(self.loop.call_later, wait, self.transport.sendto, raw, addr)
        else:
            self.loop.call_soon_threadsafe(self.transport.sendto, raw, addr)
        return None

    def _answer_status(self, request: Any, addr: Address) -> None:
        """Status-Server (RFC 5997): an Access-Accept signed with a Message-Authenticator, as FreeRADIUS answers it,
        so VPNs and load balancers can tell this server is up. It reads no person and writes no audit event. Its
        copies are answered afresh (nothing to do twice), so it stays out of the duplicate cache."""
        reply = request.CreateReply()  # signed with a Message-Authenticator, first
        reply.code = packet.AccessAccept
        raw = reply.ReplyPacket()
        self.loop.call_soon_threadsafe(self.transport.sendto, raw, addr)


async def serve(
    host: str,
    port: int,
    *,
    workers: int,
    queue: int | None = None,
    max_wait: float = 5.0,
    ready: Callable[[], object] | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    # What a password check costs on this machine, before the first request needs it (API-04).
    await loop.run_in_executor(None, pace.password_cost)
    # The clients' networks, read before the first datagram (until they are, requests are dropped).
    networks = ClientNetworks()
    threading.Thread(target=networks.keep_fresh, name="radius-clients", daemon=True).start()
    await loop.run_in_executor(None, networks.first_read.wait, 30)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: RadiusProtocol(workers=workers, networks=networks, queue=queue, max_wait=max_wait),
        local_addr=(host, port),
    )
    log.info(
        "RADIUS listening on %s:%d with %d workers, %d requests queued at most, for %.1f s at most",
        host,
        port,
        workers,
        protocol.queue.limit,
        max_wait,
    )
    if ready:
        ready()
    try:
        await asyncio.Event().wait()
    finally:
        transport.close()
