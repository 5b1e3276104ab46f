"""SMS gateways behind one seam (:class:`SmsGateway`).

- :class:`SmsOutbox` (``invites.sms.outbox``): one JSON line per SMS in a local
  file, for development;
- ``TwilioGateway`` (``invites.sms.twilio_gateway``): Twilio's Messages API,
  imported from its module so that the outbox does not load the ``twilio`` package;
- ``SmppGateway`` (``invites.sms.smpp_gateway``): SMPP 3.4 to a carrier's brandname
  SMSC (Viettel, VinaPhone, MobiFone) as a transceiver; its delivery receipts reach
  ``on_report`` on the gateway's own thread.
"""
from __future__ import annotations

from typing import Callable

from invites.sms.gateway import SmsGateway, SmsReceipt
from invites.sms.outbox import SmsOutbox

__all__ = ["SmsGateway", "SmsOutbox", "SmsReceipt", "build_gateway"]


def build_gateway(config, on_report: Callable[[str, str, str], None] | None = None) -> SmsGateway:
    """The gateway ``[sms] gateway`` names, not yet connected. Twilio's status callbacks
    go to ``<[invites] public_url>/twilio/status``; SMPP receipts are handed to
    ``on_report(gateway_id, state, reason)`` (from another thread: see the SMPP module)."""
    from mailhub.errors import ConfigError

    sms = config.sms
    if sms.gateway == "outbox":
        return SmsOutbox(config.sms_outbox_dir)
    if sms.gateway == "twilio":
        from invites.sms.twilio_gateway import TwilioGateway

        return TwilioGateway(sms.twilio_account_sid, sms.twilio_auth_token,
                             messaging_service_sid=sms.twilio_messaging_service_sid, from_=sms.twilio_from,
                             status_callback=f"{config.invites.public_url.rstrip('/')}/twilio/status")
    if sms.gateway == "smpp":
        from invites.sms.smpp_gateway import SmppGateway

        try:
            return SmppGateway(sms.smpp_host, sms.smpp_port, sms.smpp_system_id, sms.smpp_password,
                               sms.smpp_source_addr, on_report=on_report)
        except ValueError as exc:  # the message starts with the key
            raise ConfigError(f"{config.source}: sms.{exc}") from None
    raise ConfigError(f"{config.source}: sms.gateway: {sms.gateway!r} is not available in this version "
                      "(use \"outbox\", \"twilio\" or \"smpp\")")
