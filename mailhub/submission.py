"""What happens to a submission between the SMTP hooks and the queue.

The hooks in :mod:`mailhub.smtp.handler` call these three steps. Each builds a
:class:`PolicyContext`, asks the stage's policies (fail closed), records a
refusal in the usage ledger, and at DATA runs hygiene → policies → cleanup →
DKIM → durable store, answering 250 only after the commit.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from typing import Callable, Mapping, Sequence

from mailhub.cleanup import TraceInfo, cleanup, split_message
from mailhub import metrics
from mailhub.config import Config
from mailhub.dkimkeys import signing_domain
from mailhub.errors import QueueStoreError
from mailhub.ledger import mail_nature, refused_event
from mailhub.queue import AcceptedMessage, QueueWriter, new_queue_id
from mailhub.signatures.checker import DocumentChecker
from mailhub.signatures.outcome import DocumentCheck
from mailhub.signing import DkimSigner
from mailhub.smtp import replies
from mailhub.smtp.hygiene import has_bare_newline
from mailhub.usage import UsageCounter
from policies.addresses import AddressError, is_official, parse_mailbox
from policies.context import PolicyContext, Sender, Usage
from policies.headerfields import parse_header_section
from policies.registry import build_stage
from policies.runner import evaluate, evaluate_async
from policies.verdict import Verdict

log = logging.getLogger("mailhub.submission")


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What the SMTP session knows, handed to the pipeline by the hooks."""

    sender: Sender | None
    client_ip: str
    helo: str | None
    tls: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The reply to give, and whether the command was accepted."""

    reply: str
    accepted: bool


def declared_size(mail_options: list[str]) -> int | None:
    for option in mail_options:
        key, _, value = option.partition("=")
        if key.upper() == "SIZE" and value.isdigit():
            return int(value)
    return None


def _signature(documents: DocumentCheck | None) -> dict[str, str]:
    """The ledger's signature columns of a document submission; none for other mail."""
    return dict(signature=documents.outcome.value, signer=documents.signer) if documents else {}


class SubmissionPipeline:
    def __init__(self, config: Config, *, queue: QueueWriter, signer: DkimSigner,
                 usage: UsageCounter, directory_names: Callable[[], Mapping[str, str]],
                 executor: Executor | None = None,
                 on_stored: Callable[[], None] = lambda: None,
                 observers: Sequence[Callable[[str, list[str], bytes], object]] = ()) -> None:
        self._config = config
        self._settings = config.policy_settings
        self._stages = {stage: build_stage(config.policies, stage) for stage in ("mail", "rcpt", "data")}
        self._timeout = config.policies.timeout_seconds
        self._queue = queue
        self._signer = signer
        self._usage = usage
        self._names = directory_names
        self._executor = executor
        self._on_stored = on_stored
        self._observers = tuple(observers)  # told of every stored message, in a worker thread, after the 250
        self._documents = DocumentChecker(config, executor)

    # ---- the three SMTP stages ------------------------------------------------
    async def check_mail(self, facts: SessionFacts, address: str, options: list[str]) -> Outcome:
        usage = await self._usage.current(facts.sender.login) if facts.sender else Usage()
        ctx = self._context("mail", facts, address, usage=usage,
                            declared_size=declared_size(options))
        return await self._decide(ctx, facts, "250 2.1.0 OK")

    async def check_rcpt(self, facts: SessionFacts, mail_from: str, rcpts: list[str],
                         address: str) -> Outcome:
        ctx = self._context("rcpt", facts, mail_from, rcpt_tos=tuple(rcpts), rcpt=address)
        return await self._decide(ctx, facts, "250 2.1.5 OK")

    async def accept(self, facts: SessionFacts, mail_from: str, rcpts: list[str],
                     data: bytes) -> Outcome:
        started = time.perf_counter()  # the end of DATA: aiosmtpd calls us once it has the message
        if has_bare_newline(data):
            return self._refuse_fixed(facts, "bare_newline", replies.BARE_NEWLINE)
        head, _ = split_message(data)
        if not head:
            return self._refuse_fixed(facts, "no_headers", replies.NO_HEADERS)
        headers: Message = parse_header_section(head)
        documents = await self._documents.examine(data, rcpts)  # only for [[documents.rules]] recipients
        if documents.failed and documents.mode == "require":
            return self._refuse_fixed(facts, "signed_documents", replies.DOCUMENTS_UNCHECKED)
        ctx = self._context("data", facts, mail_from, rcpt_tos=tuple(rcpts), headers=headers, size=len(data),
                            documents_mode=documents.mode, documents=documents.check)
        outcome = await self._decide(ctx, facts, "", documents.check)
        if not outcome.accepted:
            return outcome
        nature = mail_nature(mail_from, rcpts, facts.sender.may_send_as if facts.sender else (), headers)
        outcome = await self._store(facts, mail_from, rcpts, data, documents.check, nature)
        if outcome.accepted:
            metrics.MESSAGES_ACCEPTED.inc()
            metrics.ACCEPT_LATENCY.observe(time.perf_counter() - started)
        return outcome

    # ---- helpers ---------------------------------------------------------------
    def _context(self, stage: str, facts: SessionFacts, mail_from: str, **kw) -> PolicyContext:
        names = self._names() if stage == "data" else {}
        return PolicyContext(stage=stage, sender=facts.sender, client_ip=facts.client_ip,
                             mail_from=mail_from, directory_names=names,
                             settings=self._settings, **kw)

    async def _decide(self, ctx: PolicyContext, facts: SessionFacts, ok_reply: str,
                      documents: DocumentCheck | None = None) -> Outcome:
        if ctx.stage == "data":
            # Header rules read client-controlled data of any size: a worker thread
            # under the timeout, failing closed.
            verdict = await evaluate_async(self._stages["data"], ctx, self._timeout, self._executor)
        else:
            # Envelope rules look at one address of a command line of at most 512
            # bytes (RFC 5321 §4.5.3.1.4): bounded work, run inline, which saves two
            # thread hand-offs per message. A rule that raises still fails closed.
            verdict = evaluate(self._stages[ctx.stage], ctx)
        if not verdict.refused:
            return Outcome(ok_reply, True)
        return self._refuse(facts, verdict, documents)

    def _refuse(self, facts: SessionFacts, verdict: Verdict, documents: DocumentCheck | None = None) -> Outcome:
        reply = verdict.smtp_reply()
        log.info("refused by %s: %s (client %s, login %s)", verdict.policy, reply,
                 facts.client_ip, facts.sender.login if facts.sender else "-")
        self._record_refusal(facts, verdict.policy, f"{verdict.code} {verdict.status} {verdict.text_vi} / {verdict.text_en}",
                             documents)
        return Outcome(reply, False)

    def _refuse_fixed(self, facts: SessionFacts, name: str, reply: str) -> Outcome:
        log.info("refused by %s: %s (client %s)", name, reply, facts.client_ip)
        self._record_refusal(facts, name, reply)
        return Outcome(reply, False)

    def _record_refusal(self, facts: SessionFacts, policy: str, reason: str,
                        documents: DocumentCheck | None = None) -> None:
        metrics.SUBMISSIONS_REFUSED.labels(policy=policy or "unknown").inc()
        self._queue.record(refused_event(
            official_email=facts.sender.login if facts.sender else None,
            unit_code=facts.sender.unit if facts.sender else None,
            policy=policy or "unknown", reason=reason, client_ip=facts.client_ip, **_signature(documents)))

    def _is_internal(self, address: str) -> bool:
        try:
            return is_official(parse_mailbox(address).domain, self._config.domains)
        except AddressError:
            return False

    async def _store(self, facts: SessionFacts, mail_from: str, rcpts: list[str],
                     data: bytes, documents: DocumentCheck | None = None,
                     nature: tuple[bool, bool] = (False, False)) -> Outcome:
        queue_id = new_queue_id()
        from_domain = mail_from.rpartition("@")[2].lower()
        domain = signing_domain(from_domain, self._signer.domains) or from_domain
        trace = TraceInfo(helo=facts.helo, client_ip=facts.client_ip,
                          hostname=self._config.server.hostname, queue_id=queue_id,
                          tls=facts.tls, authenticated=facts.sender is not None)
        cleaned, message_id = cleanup(data, trace, message_id_domain=domain,
                                      when=datetime.now(timezone.utc).astimezone())
        signed = self._signer.sign(cleaned, domain)
        internal = sum(1 for r in rcpts if self._is_internal(r))
        message = AcceptedMessage(
            id=queue_id, mail_from=mail_from, rcpt_tos=tuple(rcpts), data=signed,
            official_email=facts.sender.login if facts.sender else None,
            unit_code=facts.sender.unit if facts.sender else None,
            message_id_header=message_id, recipients_internal=internal,
            recipients_external=len(rcpts) - internal, client_ip=facts.client_ip, **_signature(documents),
            to_self=nature[0], automatic=nature[1])
        try:
            await self._queue.store(message)
        except QueueStoreError:
            error_id = uuid.uuid4().hex[:12]
            log.error("store failed for %s (error id %s)", queue_id, error_id)
            return Outcome(replies.STORE_FAILED.format(error_id=error_id), False)
        if facts.sender:
            self._usage.note_accepted(facts.sender.login)
        self._on_stored()
        for observe in self._observers:
            asyncio.get_running_loop().run_in_executor(self._executor, observe, mail_from, list(rcpts), data)
        log.info("queued %s from %s to %d recipient(s), %d bytes", queue_id, mail_from,
                 len(rcpts), len(signed))
        return Outcome(replies.QUEUED.format(queue_id=queue_id), True)
