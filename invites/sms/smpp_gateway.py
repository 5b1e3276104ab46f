"""SMS through a carrier's SMPP 3.4 gateway (the Viettel, VinaPhone and MobiFone brandname SMSCs).

How: the ``smpplib`` client, which is blocking, owns the link in one dedicated thread
(``smpp-<host>``). That thread connects, binds as a transceiver (SMPP 3.4 §4.1.5), sends
the ``submit_sm`` PDUs that :meth:`SmppGateway.send` queues, reads everything the SMSC
sends (answers, delivery receipts, ``enquire_link``), keeps an idle link alive with
``enquire_link`` and, when the link drops, binds again at once, then with backoff (1 s
doubling to ``max_backoff``) while binds fail. ``send`` waits on an asyncio future that
the thread settles with ``call_soon_threadsafe``, so the event loop never blocks on a
socket. Why a thread rather than an asyncio client of our own: smpplib's client already
does the framing, the bind and every PDU, one bind needs one thread, and the thread only
waits in ``select``. Its hex dumps of each PDU (the bind carries the password in clear)
are filtered out of the log.

Addresses: ``source_addr`` is the registered brandname (TON 5 alphanumeric, NPI 0);
the destination is international (TON 1, NPI 1), the E.164 digits without ``+``. Text
and parts: see :func:`invites.sms.smpp_codec.encode_parts`; each part asks for a receipt
(``registered_delivery`` 1). The receipt's ``gateway_id`` is the ``message_id`` of the
first part's ``submit_sm_resp``; receipts of the other parts match no SMS and change
nothing, so a multi-part SMS follows its first part.

Delivery receipts: ``deliver_sm`` with the receipt bit in ``esm_class`` (§5.2.12),
always answered with ``deliver_sm_resp``, read by ``parse_receipt`` and handed to
``on_report(gateway_id, state, reason)`` **on the gateway's thread** (the callback must
hand any database work to another thread and return).

Errors by meaning (``classify_smpp_status``: an invalid number or sender fails for good;
throttling, a full queue, SMSC errors, timeouts, a refused connection or bind are retried);
``send`` never raises for them.
"""
from __future__ import annotations

import asyncio
import logging
import select
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import smpplib.client
from smpplib import consts, exceptions, smpp

from invites.sms.gateway import SmsReceipt, accepted, refused
from invites.sms.smpp_codec import STATUSES, classify_smpp_status, encode_parts, parse_receipt
from mailhub.config import Secret

log = logging.getLogger("invites.sms.smpp")
WIRE_LOGGER = "invites.sms.smpp.wire"  # smpplib's client logs here


class _NoHexDumps(logging.Filter):
    """smpplib logs each PDU in hex at DEBUG: the bind's password, the numbers, the texts."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith((">>", "<<"))


logging.getLogger(WIRE_LOGGER).addFilter(_NoHexDumps())


class _Client(smpplib.client.Client):
    """smpplib's client, connected with ``create_connection`` (IPv6, an OSError that says why)."""

    def connect(self) -> None:
        self._socket = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.state = consts.SMPP_CLIENT_STATE_OPEN

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self.state = consts.SMPP_CLIENT_STATE_CLOSED


class _LinkDown(Exception):
    """The link is gone or could not be bound; the message is the reason, one line."""


@dataclass(eq=False)
class _Request:
    to: str
    parts: list[bytes]
    coding: int
    esm_class: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    deadline: float = 0.0
    ids: list[str | None] = field(default_factory=list)  # the message_id of each part, once answered


class SmppGateway:
    """One transceiver bind to ``host:port``, opened by :meth:`start` (or the first send).

    ``timeout``: seconds for the connection, the bind and each answer; ``enquire_seconds``:
    idle time before an ``enquire_link``; ``max_backoff``: the longest wait between
    reconnections. While waiting after a failed bind, ``send`` answers at once with the reason.
    """

    def __init__(self, host: str, port: int, system_id: str, password: Secret | str, source_addr: str, *,
                 on_report: Callable[[str, str, str], None] | None = None, system_type: str = "",
                 timeout: float = 10.0, enquire_seconds: float = 30.0, max_backoff: float = 60.0) -> None:
        secret = password.reveal() if isinstance(password, Secret) else password
        # C-Octet Strings with their NUL (SMPP 3.4 §5.2.1-3); an alphanumeric sender has 11 characters.
        for key, value, most in (("smpp_system_id", system_id, 15), ("smpp_password", secret, 8),
                                 ("smpp_source_addr", source_addr, 11)):
            if not value or len(value) > most or not value.isascii() or not value.isprintable():
                raise ValueError(f"{key}: 1 to {most} printable ASCII characters (SMPP 3.4)")
        if not host:
            raise ValueError("smpp_host: required")
        if not 0 < port < 65536:
            raise ValueError(f"smpp_port: expected 1 to 65535, got {port}")
        self.host, self.port, self.system_id, self.source_addr = host, port, system_id, source_addr
        self._password, self.system_type, self.on_report = Secret(secret), system_type, on_report
        self.timeout, self.enquire_seconds, self.max_backoff = timeout, enquire_seconds, max_backoff
        self._lock = threading.Lock()
        self._queue: deque[_Request] = deque()
        self._state = "idle"  # idle, connecting, bound, backoff (after a failure), closed
        self._last_error = ""
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r: socket.socket | None = None  # made by start(): a gateway only built holds nothing open
        self._wake_w: socket.socket | None = None

    def __repr__(self) -> str:
        return (f"SmppGateway(host={self.host!r}, port={self.port}, system_id={self.system_id!r}, "
                f"source_addr={self.source_addr!r})")

    def start(self) -> None:
        """Open the link in the background (idempotent), so receipts flow before the first SMS."""
        with self._lock:
            if self._thread is not None or self._state == "closed":
                return
            self._state = "connecting"
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._thread = threading.Thread(target=self._run, name=f"smpp-{self.host}", daemon=True)
            self._thread.start()

    async def send(self, to: str, text: str, *, reference: str, unicode: bool = False) -> SmsReceipt:
        digits = to.removeprefix("+")
        if not (to.startswith("+") and digits.isdigit()):
            return refused(f"not an international number: {to[:20]!r}", permanent=True)
        try:
            parts, coding, esm_class = encode_parts(text, unicode)
        except ValueError as exc:
            return refused(str(exc), permanent=True)
        self.start()
        loop = asyncio.get_running_loop()
        request = _Request(digits, parts, coding, esm_class, loop, loop.create_future())
        with self._lock:
            if self._state in ("closed", "backoff"):
                reason = self._last_error if self._state == "backoff" else "the SMPP gateway is closed"
                return refused(reason, permanent=False, status="unsent")
            self._queue.append(request)
        self._wake()
        try:  # the thread answers within about 3 timeouts (connect, bind, answer); this guards against a bug
            return await asyncio.wait_for(request.future, 4 * self.timeout + 5)
        except TimeoutError:
            return refused(f"no answer from the SMPP gateway's thread for {self.host}:{self.port}",
                           permanent=False, status="unsent")

    async def close(self) -> None:
        """Unbind (§4.2) and stop the thread; SMS still queued here are answered as not sent."""
        with self._lock:
            self._state, thread = "closed", self._thread
        self._closing.set()
        self._wake()
        if thread is not None:
            await asyncio.to_thread(thread.join, self.timeout + 5)
        if thread is not None and not thread.is_alive():
            self._wake_r.close()
            self._wake_w.close()

    # ---- the link's thread ------------------------------------------------------------

    def _wake(self) -> None:
        if self._wake_w is None:  # not started
            return
        try:
            self._wake_w.send(b"\0")
        except OSError:  # the buffer is full (it will wake anyway) or the gateway is closed
            pass

    def _run(self) -> None:
        failures = 0
        while not self._closing.is_set():
            client = _Client(self.host, self.port, timeout=self.timeout, logger_name=WIRE_LOGGER,
                             allow_unknown_opt_params=True)  # vendor TLVs in receipts are skipped
            pending: dict[int, tuple[_Request, int]] = {}
            queued: list[_Request] = []
            bound = False
            try:
                self._bind(client)
                bound, failures = True, 0
                self._set_state("bound")
                self._serve(client, pending)
                reason = "the SMPP gateway is closing"
            except _LinkDown as exc:
                reason = str(exc)
            except Exception:  # a bug: log it, keep the thread, relink
                log.exception("SMPP: unexpected error on the link to %s:%d", self.host, self.port)
                reason = "internal error in the SMPP gateway, see the log"
            finally:
                client.close()
            failures += 0 if bound else 1
            delay = min(self.max_backoff, 2.0 ** (failures - 1)) if failures else 0.0
            if not self._closing.is_set():
                log.warning("SMPP: %s; binding again %s", reason, f"in {delay:g} s" if delay else "now")
            for request in {r for r, _ in pending.values()}:  # sent: perhaps taken, perhaps not
                self._settle(request, refused(f"the link dropped before the SMSC answered: {reason}",
                                              permanent=False, status="unsent"))
            with self._lock:
                self._last_error = reason
                closing = self._closing.is_set()
                if closing or delay:  # nothing leaves before the next bind: the queued SMS wait in the SMS queue
                    queued, self._queue = list(self._queue), deque()
                self._state = "closed" if closing else ("backoff" if delay else "connecting")
            for request in queued:
                self._settle(request, refused(reason, permanent=False, status="unsent"))
            if delay and not closing:
                self._closing.wait(delay)
                self._set_state("connecting")

    def _set_state(self, state: str) -> None:
        with self._lock:
            if self._state != "closed":
                self._state = state

    def _bind(self, client: _Client) -> None:
        where = f"{self.host}:{self.port}"
        try:
            client.connect()
        except OSError as exc:
            why = exc.strerror or exc.__class__.__name__
            raise _LinkDown(f"cannot connect to the SMSC at {where}: {why}") from None
        try:
            client.bind_transceiver(system_id=self.system_id, password=self._password.reveal(),
                                    system_type=self.system_type)
        except exceptions.PDUError as exc:
            status = exc.args[1] if len(exc.args) > 1 else 0x0D
            raise _LinkDown(f"the SMSC at {where} refused our bind: {classify_smpp_status(status)[1]}") from None
        except (exceptions.ConnectionError, OSError):
            raise _LinkDown(f"the SMSC at {where} did not answer our bind") from None
        log.info("SMPP: bound to %s as %s", where, self.system_id)

    def _serve(self, client: _Client, pending: dict[int, tuple[_Request, int]]) -> None:
        sock = client._socket
        heard, enquired = time.monotonic(), None
        while not self._closing.is_set():
            now = time.monotonic()
            waits = [heard + self.enquire_seconds - now] + [r.deadline - now for r, _ in pending.values()]
            if enquired is not None:
                waits.append(enquired + self.timeout - now)
            readable, _, _ = select.select([sock, self._wake_r], [], [], max(0.0, min(waits)))
            if self._wake_r in readable:
                self._wake_r.recv(4096)
            while sock in readable:  # all that is there, up to an end of link, before sending more
                pdu = self._read(client)
                heard = time.monotonic()
                if pdu is not None and pdu.command == "enquire_link_resp":
                    enquired = None
                elif pdu is not None:
                    self._dispatch(client, pdu, pending)
                readable = select.select([sock], [], [], 0)[0]
            self._submit_queued(client, pending)  # after reading: a link the SMSC closed fails here, not them
            now = time.monotonic()
            for request in {r for r, _ in pending.values() if r.deadline <= now}:
                self._finish(request, refused(f"no answer from the SMSC within {self.timeout:g} s",
                                              permanent=False, status="unsent"), pending)
            if enquired is not None and now > enquired + self.timeout:
                raise _LinkDown(f"the SMSC at {self.host}:{self.port} stopped answering enquire_link")
            if enquired is None and now - heard >= self.enquire_seconds:
                self._write(client, smpp.make_pdu("enquire_link", client=client))  # §4.11: keep the link alive
                enquired = now
        self._unbind(client)

    def _submit_queued(self, client: _Client, pending: dict[int, tuple[_Request, int]]) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    return
                request = self._queue.popleft()
            if request.future.done():  # the caller gave up
                continue
            request.deadline, request.ids = time.monotonic() + self.timeout, [None] * len(request.parts)
            for n, part in enumerate(request.parts):
                pdu = smpp.make_pdu("submit_sm", client=client, service_type="", source_addr_ton=5,
                                    source_addr_npi=0, source_addr=self.source_addr, dest_addr_ton=1, dest_addr_npi=1,
                                    destination_addr=request.to, esm_class=request.esm_class, registered_delivery=1,
                                    data_coding=request.coding, short_message=part)
                pending[pdu.sequence] = (request, n)
                self._write(client, pdu)

    def _dispatch(self, client: _Client, pdu, pending: dict[int, tuple[_Request, int]]) -> None:
        if pdu.command in ("submit_sm_resp", "generic_nack"):
            entry = pending.pop(pdu.sequence, None)
            if entry is None:
                return  # the answer to a request that timed out or already failed
            request, n = entry
            if pdu.status != consts.SMPP_ESME_ROK:
                permanent, reason = classify_smpp_status(pdu.status)
                name = STATUSES.get(pdu.status, (0, "failed"))[1]
                self._finish(request, refused(reason, permanent=permanent, status=name), pending)
                return
            request.ids[n] = (pdu.message_id or b"").decode("latin-1").strip("\0 ")
            if None not in request.ids:
                self._finish(request, accepted(request.ids[0] or "", "accepted"), pending)
        elif pdu.command in ("deliver_sm", "enquire_link", "unbind"):
            answer = smpp.make_pdu(f"{pdu.command}_resp", client=client)
            answer.sequence = pdu.sequence
            self._write(client, answer)  # a deliver_sm left unanswered would come again
            if pdu.command == "unbind":
                raise _LinkDown(f"the SMSC at {self.host}:{self.port} unbound")
            if pdu.command == "deliver_sm":
                self._on_deliver(pdu)
        else:
            log.info("SMPP: ignored a %s from the SMSC", pdu.command)

    def _on_deliver(self, pdu) -> None:
        if (pdu.esm_class or 0) & 0x3C != 0x04:  # §5.2.12: xx0001xx is an SMSC delivery receipt
            log.info("SMPP: ignored a deliver_sm that is not a delivery receipt (esm_class 0x%02X)", pdu.esm_class or 0)
            return
        report = parse_receipt(pdu.short_message or pdu.message_payload or b"", pdu.receipted_message_id,
                               pdu.message_state)
        if report is None:
            log.warning("SMPP: unreadable delivery receipt")
        elif self.on_report is not None:
            try:
                self.on_report(*report)
            except Exception:
                log.exception("SMPP: the delivery report for %s was not taken", report[0])

    def _finish(self, request: _Request, receipt: SmsReceipt, pending: dict[int, tuple[_Request, int]]) -> None:
        for sequence in [s for s, (r, _) in pending.items() if r is request]:
            del pending[sequence]
        self._settle(request, receipt)

    @staticmethod
    def _settle(request: _Request, receipt: SmsReceipt) -> None:
        def settle() -> None:
            if not request.future.done():
                request.future.set_result(receipt)

        try:
            request.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the event loop is closed: nobody waits any more
            pass

    def _read(self, client: _Client):
        try:
            return client.read_pdu()
        except exceptions.UnknownCommandError as exc:  # read whole, so the framing holds
            log.warning("SMPP: %s", exc)
            return None
        except (exceptions.ConnectionError, OSError):
            raise _LinkDown(f"the SMSC at {self.host}:{self.port} closed the link") from None
        except (exceptions.PDUError, struct.error, ValueError, IndexError):
            raise _LinkDown(f"malformed PDU from the SMSC at {self.host}:{self.port}") from None

    def _write(self, client: _Client, pdu) -> None:
        try:
            client.send_pdu(pdu)
        except (exceptions.ConnectionError, exceptions.PDUError, OSError):
            raise _LinkDown(f"the link to the SMSC at {self.host}:{self.port} broke while sending") from None

    def _unbind(self, client: _Client) -> None:
        """Unbind and wait briefly for ``unbind_resp``; receipts arriving meanwhile stay
        unanswered, so the SMSC delivers them again on the next bind."""
        try:
            self._write(client, smpp.make_pdu("unbind", client=client))
            deadline = time.monotonic() + min(self.timeout, 2.0)
            while (left := deadline - time.monotonic()) > 0 and select.select([client._socket], [], [], left)[0]:
                pdu = self._read(client)
                if pdu is not None and pdu.command == "unbind_resp":
                    return
        except _LinkDown:
            pass
