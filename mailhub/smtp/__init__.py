"""The SMTP front end: listeners, protocol hygiene, AUTH, and thin hooks."""
