"""The aiosmtpd hooks: a few lines each, they hand over to the submission pipeline."""
from __future__ import annotations

import logging
import uuid

from mailhub.smtp import replies
from mailhub.submission import SessionFacts, SubmissionPipeline

log = logging.getLogger("mailhub.smtp")


def _facts(server, session) -> SessionFacts:
    """The session's facts, built once and rebuilt only when AUTH or EHLO changed them."""
    sender = session.auth_data if session.authenticated else None
    facts = getattr(session, "facts", None)
    if facts is not None and facts.sender is sender and facts.helo == session.host_name:
        return facts
    tls = None
    ssl_object = server.transport.get_extra_info("ssl_object") if server.transport else None
    if ssl_object is not None:
        tls = f"{ssl_object.version()} {ssl_object.cipher()[0]}"
    session.facts = SessionFacts(sender=sender, client_ip=server.client_ip,
                                 helo=session.host_name, tls=tls)
    return session.facts


class SubmissionHandler:
    def __init__(self, pipeline: SubmissionPipeline) -> None:
        self._pipeline = pipeline

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        outcome = await self._pipeline.check_mail(_facts(server, session), address, mail_options)
        if outcome.accepted:
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
        return outcome.reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        outcome = await self._pipeline.check_rcpt(
            _facts(server, session), envelope.mail_from, envelope.rcpt_tos, address)
        if outcome.accepted:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return outcome.reply

    async def handle_DATA(self, server, session, envelope):
        outcome = await self._pipeline.accept(
            _facts(server, session), envelope.mail_from, envelope.rcpt_tos,
            envelope.original_content)
        return outcome.reply

    async def handle_exception(self, error: Exception) -> str:
        # Never show a traceback or class name to the client: log it with an id.
        error_id = uuid.uuid4().hex[:12]
        log.error("unexpected error (error id %s)", error_id, exc_info=error)
        return replies.INTERNAL_ERROR.format(error_id=error_id)
