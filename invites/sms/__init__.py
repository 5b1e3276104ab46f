"""SMS gateways behind one seam (:class:`SmsGateway`).

- :class:`SmsOutbox` (``invites.sms.outbox``): one JSON line per SMS in a local
  file, for development;
- ``TwilioGateway`` (``invites.sms.twilio_gateway``): Twilio's Messages API,
  imported from its module so that the outbox does not load the ``twilio`` package;
- SMPP (the carriers' brandname gateways): to come.
"""
from invites.sms.gateway import SmsGateway, SmsReceipt
from invites.sms.outbox import SmsOutbox

__all__ = ["SmsGateway", "SmsOutbox", "SmsReceipt"]
