"""A local SMSC for the SMPP gateway: real SMPP 3.4 PDUs on 127.0.0.1 (ephemeral port).

One thread accepts, one thread per connection reads and answers. PDUs are encoded
and decoded with smpplib's PDU classes; the framing, the answers and the receipt
text follow the spec (SMPP 3.4 §4, Appendix B), written here:

- ``bind_transceiver``: checks system_id and password, else ``ESME_RBINDFAIL`` (0x0D)
  and the connection is closed;
- ``submit_sm``: recorded (:class:`Submitted`), answered with a message id, or with
  the ``command_status`` a test scripts per destination (``statuses``), or never
  (``stall``); before a bind: ``ESME_RINVBNDSTS``;
- receipts: for each accepted part that asked for one, a ``deliver_sm`` per stat in
  ``receipts[destination]`` (default ``["DELIVRD"]``; ``["DELIVRD", "ENROUTE"]`` is
  out of order), sent at once or held until :meth:`release_receipts`, with the TLVs
  ``receipted_message_id`` and ``message_state`` unless ``receipt_tlvs`` is False;
- ``enquire_link`` and ``unbind`` answered and counted; :meth:`drop` closes every
  connection, as an SMSC that restarts.
"""
from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from smpplib import smpp
from smpplib.client import SimpleSequenceGenerator
from smpplib.gsm import GSM_CHARACTER_TABLE

SYSTEM_ID, PASSWORD, BRANDNAME = "ubndhcm", "Mk7xQ2p!", "UBNDTPHCM"
STATE_CODES = {"ENROUTE": 1, "DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "ACCEPTD": 6, "UNKNOWN": 7,
               "REJECTD": 8}


def gsm_decode(data: bytes) -> str:
    """Unpacked GSM 03.38 default alphabet (with the extension table after 0x1B) → text."""
    out, escaped = [], False
    for byte in data:
        if byte == 0x1B and not escaped:
            escaped = True
            continue
        out.append(GSM_CHARACTER_TABLE[byte + 0x80 if escaped else byte])
        escaped = False
    return "".join(out)


@dataclass
class Submitted:
    """One ``submit_sm`` as the SMSC read it."""

    to: str
    source: str
    source_ton: int
    source_npi: int
    dest_ton: int
    dest_npi: int
    data_coding: int
    esm_class: int
    registered_delivery: int
    short_message: bytes
    message_id: str  # "" when refused or stalled

    @property
    def concat(self) -> tuple[int, int, int] | None:
        """``(reference, total, number)`` of a concatenated part (UDH IEI 0x00), else None."""
        if not self.esm_class & 0x40:
            return None
        udh = self.short_message[1:1 + self.short_message[0]]
        while udh:
            iei, length = udh[0], udh[1]
            if iei == 0x00 and length == 3:
                return udh[2], udh[3], udh[4]
            udh = udh[2 + length:]
        return None

    @property
    def payload(self) -> bytes:
        return self.short_message[1 + self.short_message[0]:] if self.esm_class & 0x40 else self.short_message

    def decoded(self) -> str:
        return self.payload.decode("utf-16-be") if self.data_coding == 8 else gsm_decode(self.payload)


@dataclass
class Bind:
    system_id: str
    password: str
    ok: bool


class _Connection:
    def __init__(self, standin: SmscStandin, sock: socket.socket) -> None:
        self.standin, self.sock = standin, sock
        self.lock = threading.Lock()
        self.bound = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        try:
            while (pdu := self.read()) is not None:
                self.standin.handle(self, pdu)
        except OSError:
            pass
        finally:
            self.close()

    def read(self):
        head = self._exact(4)
        if head is None:
            return None
        (length,) = struct.unpack(">L", head)
        body = self._exact(length - 4)
        if body is None:
            return None
        return smpp.parse_pdu(head + body, client=self.standin.sequences, allow_unknown_opt_params=True)

    def _exact(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def write(self, pdu) -> None:
        with self.lock:
            self.sock.sendall(pdu.generate())

    def close(self) -> None:
        self.bound = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@dataclass
class SmscStandin:
    system_id: str = SYSTEM_ID
    password: str = PASSWORD
    statuses: dict[str, int] = field(default_factory=dict)  # destination digits -> command_status
    stall: set[str] = field(default_factory=set)  # destinations whose submit_sm is never answered
    receipts: dict[str, list[str]] = field(default_factory=dict)  # destination -> stats, default DELIVRD
    hold_receipts: bool = False
    receipt_tlvs: bool = True
    submits: list[Submitted] = field(default_factory=list)
    binds: list[Bind] = field(default_factory=list)
    enquire_links: int = 0
    unbinds: int = 0
    receipts_acked: int = 0  # deliver_sm_resp received

    def start(self) -> SmscStandin:
        self.sequences = SimpleSequenceGenerator()
        self._lock = threading.Lock()
        self._connections: list[_Connection] = []
        self._held: list[tuple[str, str, str]] = []
        self._ids = 0
        self._stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._listener.close()
        self.drop()

    def drop(self) -> None:
        """Close every connection (the SMSC restarts, a link breaks)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
            connection.thread.join(5)

    def release_receipts(self) -> None:
        """Send the held receipts on the newest bound connection."""
        with self._lock:
            held, self._held = self._held, []
        for message_id, to, stat in held:
            self._send_receipt(self._newest_bound(), message_id, to, stat)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            connection = _Connection(self, sock)
            with self._lock:
                self._connections.append(connection)
            connection.thread.start()

    def _newest_bound(self) -> _Connection:
        with self._lock:
            return next(c for c in reversed(self._connections) if c.bound)

    def _answer(self, connection: _Connection, request, command: str, status: int = 0, **fields) -> None:
        pdu = smpp.make_pdu(command, client=self.sequences, status=status, **fields)
        pdu.sequence = request.sequence
        connection.write(pdu)

    def handle(self, connection: _Connection, pdu) -> None:
        command = pdu.command
        if command == "bind_transceiver":
            ok = (pdu.system_id, pdu.password) == (self.system_id.encode(), self.password.encode())
            self.binds.append(Bind(pdu.system_id.decode(), pdu.password.decode(), ok))
            self._answer(connection, pdu, "bind_transceiver_resp", 0 if ok else 0x0D, system_id="STANDIN")
            connection.bound = ok
            if not ok:
                connection.close()
        elif command == "submit_sm" and not connection.bound:
            self._answer(connection, pdu, "submit_sm_resp", 0x04)
        elif command == "submit_sm":
            self._submit(connection, pdu)
        elif command == "enquire_link":
            self.enquire_links += 1
            self._answer(connection, pdu, "enquire_link_resp")
        elif command == "unbind":
            self.unbinds += 1
            self._answer(connection, pdu, "unbind_resp")
            connection.close()
        elif command == "deliver_sm_resp":
            self.receipts_acked += 1
        else:
            self._answer(connection, pdu, "generic_nack", 0x03)  # ESME_RINVCMDID

    def _submit(self, connection: _Connection, pdu) -> None:
        to = pdu.destination_addr.decode()
        status = self.statuses.get(to, 0)
        message_id = ""
        if status == 0 and to not in self.stall:
            with self._lock:
                self._ids += 1
                message_id = f"{0x5A000000 + self._ids:08X}"
        self.submits.append(Submitted(to, pdu.source_addr.decode(), pdu.source_addr_ton, pdu.source_addr_npi,
                                      pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.data_coding, pdu.esm_class or 0,
                                      pdu.registered_delivery or 0, pdu.short_message or b"", message_id))
        if to in self.stall:
            return
        self._answer(connection, pdu, "submit_sm_resp", status, message_id=message_id or None)
        if not message_id or not (pdu.registered_delivery or 0) & 1:
            return
        for stat in self.receipts.get(to, ["DELIVRD"]):
            if self.hold_receipts:
                with self._lock:
                    self._held.append((message_id, to, stat))
            else:
                self._send_receipt(connection, message_id, to, stat)

    def _send_receipt(self, connection: _Connection, message_id: str, to: str, stat: str) -> None:
        stamp = datetime.now(UTC).strftime("%y%m%d%H%M")
        err = "000" if stat in ("DELIVRD", "ENROUTE", "ACCEPTD") else "069"
        text = (f"id:{message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} submit date:{stamp} "
                f"done date:{stamp} stat:{stat} err:{err} text:Giay moi hop")
        tlvs = {"receipted_message_id": message_id, "message_state": STATE_CODES[stat]} if self.receipt_tlvs else {}
        pdu = smpp.make_pdu("deliver_sm", client=self.sequences, service_type="", source_addr_ton=1,
                            source_addr_npi=1, source_addr=to, dest_addr_ton=5, dest_addr_npi=0,
                            destination_addr="UBNDTPHCM", esm_class=0x04, data_coding=0,
                            short_message=text.encode("ascii"), **tlvs)
        connection.write(pdu)
