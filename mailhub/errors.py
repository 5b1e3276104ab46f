"""Errors of mailhub.

MailhubError
├── ConfigError            a bad configuration file or value; names the file and key
├── InputError             bad input from a person (CSV import, CLI flag): file, line, field
├── DirectoryError         unknown unit/official, duplicate address
├── QueueStoreError        the queue could not store a message (answer 451)
└── DeliveryError
    ├── TemporaryDeliveryError   drives a retry (4xx, connection failure)
    └── PermanentDeliveryError   drives a bounce (5xx)

An expected refusal of a message is a returned policy verdict, not an exception.
"""


class MailhubError(Exception):
    """Base of every error mailhub raises on purpose."""


class ConfigError(MailhubError):
    """A configuration file or value is wrong; the message names the key."""


class InputError(MailhubError):
    """Bad input from a person; the message names the file, line and field."""


class DirectoryError(MailhubError):
    """The directory refused an operation (unknown unit, duplicate address...)."""


class QueueStoreError(MailhubError):
    """The queue could not durably store a message."""


class DeliveryError(MailhubError):
    """Delivering a message to the next hop failed."""


class TemporaryDeliveryError(DeliveryError):
    """A failure worth retrying: 4xx answer, connection refused or timed out."""


class PermanentDeliveryError(DeliveryError):
    """A failure that will not heal: 5xx answer."""
