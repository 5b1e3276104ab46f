"""Meeting invitations by email (iTIP/iMIP) and SMS.

Not built yet: this package is filled by the invitations issue. It will write to
the same queue and usage ledger as the relay (kind ``invite_email``) and never
call into an SMTP session.
"""
