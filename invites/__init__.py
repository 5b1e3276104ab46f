"""Meeting invitations by email (iTIP/iMIP) and SMS.

Built so far (the sending service, reminders, replies intake, the HTTP API and
the CLI come next):

- :mod:`.spec`     a meeting as a secretary describes it (TOML or flags), checked field by field
- :mod:`.store`    creating a meeting: attendees from the directory and guests
- :mod:`.ical`     the iCalendar object (RFC 5545/5546) and REPLY/COUNTER parsing
- :mod:`.imip`     the invitation email (RFC 6047), from ``templates/invites/``
- :mod:`.smstext`  SMS text: diacritics stripped, GSM-7/UCS-2 segments counted
- :mod:`.rsvp`     short signed RSVP links (the SMS path: Vietnamese numbers cannot reply)
- :mod:`.sms`      the SMS gateways behind one seam (outbox, Twilio)

It writes to the same queue and usage ledger as the relay (kind
``invite_email``) and never calls into an SMTP session.
"""
