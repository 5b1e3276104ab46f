"""SMS gateways behind one seam (:class:`SmsGateway`).

- :class:`SmsOutbox` (``invites.sms.outbox``): one JSON line per SMS in a local
  file, for development;
- ``TwilioGateway`` (``invites.sms.twilio_gateway``): Twilio's Messages API,
  imported from its module so that the outbox does not load the ``twilio`` package;
- SMPP (the carriers' brandname gateways): to come.
"""
from invites.sms.gateway import SmsGateway, SmsReceipt
from invites.sms.outbox import SmsOutbox

__all__ = ["SmsGateway", "SmsOutbox", "SmsReceipt", "build_gateway"]


def build_gateway(config) -> SmsGateway:
    """The gateway ``[sms] gateway`` names. Twilio's status callbacks go to
    ``<[invites] public_url>/twilio/status``."""
    from mailhub.errors import ConfigError

    sms = config.sms
    if sms.gateway == "outbox":
        return SmsOutbox(config.sms_outbox_dir)
    if sms.gateway == "twilio":
        from invites.sms.twilio_gateway import TwilioGateway

        return TwilioGateway(sms.twilio_account_sid, sms.twilio_auth_token,
                             messaging_service_sid=sms.twilio_messaging_service_sid, from_=sms.twilio_from,
                             status_callback=f"{config.invites.public_url.rstrip('/')}/twilio/status")
    raise ConfigError(f"{config.source}: sms.gateway: {sms.gateway!r} is not available in this version "
                      "(use \"outbox\" or \"twilio\")")
