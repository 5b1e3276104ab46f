"""Configuration: one TOML file, validated once at start, frozen, passed in.

Nothing reads the environment at import time: :func:`load_config` takes the
environment mapping it should apply (``MAILHUB_HOME``, ``MAILHUB_DATABASE_URL``,
``MAILHUB_SUBMISSION_LISTEN``, ``MAILHUB_SUBMISSIONS_LISTEN``, ``MAILHUB_HTTP_LISTEN``).
A missing file, an unknown key or a value of the wrong type raises
:class:`ConfigError` naming the file and the key.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mailhub.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "mailhub.toml"


class Secret(str):
    """A string that never shows itself in repr, logs or tracebacks."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    def reveal(self) -> str:
        return str.__str__(self)

    __str__ = __repr__


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, key: str) -> "ListenAddress":
        host, sep, port = text.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"{key}: expected host:port, got {text!r}")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ServerConfig:
    hostname: str = "mailhub.localhost"
    home: str = "var"
    processes: int = 1
    # Seconds to wait before the greeting; a client that talks first is dropped.
    pregreet_wait_seconds: float = 0.2
    # An idle SMTP session is closed after this many seconds (RFC 5321 §4.5.3.2.7).
    session_timeout_seconds: float = 300.0
    # "uvloop" (libuv-based, measured ~15% more messages per second) or "asyncio".
    event_loop: str = "uvloop"


@dataclass(frozen=True)
class ListenConfig:
    submission: str = "127.0.0.1:10587"
    submissions: str = "127.0.0.1:10465"
    http: str = "127.0.0.1:8025"
    # The HTTPS reverse proxies in front of `http` (addresses or networks) whose
    # X-Forwarded-For / X-Forwarded-Proto are believed: the console's sign-in lockout per
    # client address, and the logs, then see the browser's address instead of the proxy's.
    http_trusted_proxies: tuple[str, ...] = ()
    # iMIP replies forwarded by the city's mail server (external guests' answers); "" = off.
    replies: str = ""


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = ""


@dataclass(frozen=True)
class TLSConfig:
    cert_file: str = ""
    key_file: str = ""


@dataclass(frozen=True)
class DomainsConfig:
    official: tuple[str, ...] = ("hochiminhcity.gov.vn",)
    subdomains_of: tuple[str, ...] = ("hochiminhcity.gov.vn",)


@dataclass(frozen=True)
class DKIMConfig:
    selector: str = "mailhub"
    ed25519: bool = False
    keys_dir: str = ""


@dataclass(frozen=True)
class AuthConfig:
    max_failures: int = 5
    window_seconds: int = 900
    lockout_seconds: int = 900
    # Failed AUTH attempts in one SMTP session before the relay hangs up.
    session_max_failures: int = 3


@dataclass(frozen=True)
class LimitsConfig:
    max_message_bytes: int = 25 * 1024 * 1024
    max_recipients: int = 100
    per_hour: int = 200
    per_day: int = 1000
    external_recipients: str = "allow"
    max_external_recipients: int = 100


@dataclass(frozen=True)
class ClassificationConfig:
    header: str = "X-Classification"
    markers: tuple[str, ...] = ("MẬT", "TỐI MẬT", "TUYỆT MẬT")


@dataclass(frozen=True)
class PoliciesConfig:
    mail: tuple[str, ...] = ("sender_domain_official", "sender_owned", "rate_limit", "declared_size")
    rcpt: tuple[str, ...] = ("recipient_syntax", "recipient_count", "external_recipients")
    data: tuple[str, ...] = ("message_size", "header_from_matches", "no_impersonation", "classification",
                             "signed_documents")
    timeout_seconds: float = 2.0


@dataclass(frozen=True)
class QueueConfig:
    group_commit_max: int = 64
    # Finished mail (delivered, or bounced and the sender told) is removed this many
    # days after acceptance; 0 keeps it forever. The usage ledger is not affected.
    retention_days: int = 30


@dataclass(frozen=True)
class RouteConfig:
    """``[[delivery.routes]]``: mail for ``domains`` goes to ``host:port`` instead of
    the default path (e.g. the city's own domains to the mailbox servers)."""

    domains: tuple[str, ...] = ()  # "hcm.gov.vn" matches that domain; ".hcm.gov.vn" its subdomains
    host: str = ""
    port: int = 25
    protocol: str = "smtp"  # "smtp" or "lmtp" (RFC 2033)
    tls: str = "starttls"  # as delivery.relay_tls, plus "may"
    username: str = ""
    password: Secret = Secret("")


@dataclass(frozen=True)
class DeliveryConfig:
    mode: str = "outbox"
    relay_host: str = ""
    relay_port: int = 25
    relay_tls: str = "starttls"
    relay_username: str = ""
    relay_password: Secret = Secret("")
    # Messages being sent at once, in all, and to one destination (a relay, a
    # route, or one recipient domain's mail exchangers).
    concurrency: int = 40
    per_destination_concurrency: int = 20
    poll_seconds: float = 1.0
    # Seconds to wait for each answer of the next hop (RFC 5321 §4.5.3.2).
    timeout_seconds: float = 60.0
    # Retries: exponential backoff from retry_min to retry_max with ±retry_jitter,
    # give up (bounce) after max_age_hours; warn the sender after delay_warning_hours
    # (0 = never).
    retry_min_seconds: float = 300.0
    retry_max_seconds: float = 3600.0
    retry_jitter: float = 0.2
    max_age_hours: float = 120.0
    delay_warning_hours: float = 4.0
    # A claimed recipient belongs to its worker for this long; if the worker dies,
    # another node takes it over after it (at-least-once: it may be sent twice).
    lease_seconds: float = 300.0
    # A destination that did not answer at all is not tried again for this long;
    # its messages are deferred meanwhile without a connection attempt.
    dead_destination_seconds: float = 60.0
    # Direct MX delivery (mode = "mx"): DNS servers ("1.2.3.4", "1.2.3.4:5353"; empty =
    # /etc/resolv.conf), the port of the mail exchangers, and the recipient domains
    # whose exchangers must offer STARTTLS with a certificate valid for their name
    # (the others get opportunistic TLS). tls_ca_file: extra trusted CAs (PEM) for
    # verified next hops, besides the system's.
    dns_servers: tuple[str, ...] = ()
    mx_port: int = 25
    tls_required_domains: tuple[str, ...] = ()
    tls_ca_file: str = ""
    routes: tuple[RouteConfig, ...] = ()


@dataclass(frozen=True)
class InvitesConfig:
    # Reminders by email and SMS, hours before the start of the meeting.
    reminder_hours_before: tuple[float, ...] = (24.0, 1.0)
    # A reminder to those who have not answered, hours before the start (0: none).
    unanswered_reminder_hours_before: float = 48.0
    # The address officials' browsers and Twilio reach mailhub's HTTP server at:
    # RSVP links and SMS status callbacks are built on it.
    public_url: str = "http://127.0.0.1:8025"
    # Send SMS with Vietnamese diacritics (UCS-2: 70 characters per SMS instead of 160).
    sms_unicode: bool = False
    # Who may connect to [listen] replies (the city's mail server), as networks.
    reply_intake_networks: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    # Processes that build and sign the emails of a large send (200 or more): 0 is one
    # per core, 1 builds them in the sending process.
    build_processes: int = 0


@dataclass(frozen=True)
class DocumentRuleConfig:
    """``[[documents.rules]]``: the document signatures of submissions to ``recipients``
    are checked; ``record`` counts signed and unsigned, ``require`` refuses a submission
    without a valid signature (the ``signed_documents`` rule)."""

    recipients: tuple[str, ...] = ()  # "vanban@ubnd.hanoi.gov.vn", or "@ubnd.hanoi.gov.vn": the whole domain
    mode: str = "record"


@dataclass(frozen=True)
class DocumentsConfig:
    # A folder of the CA certificates (PEM or DER) the city trusts for document
    # signatures; "" is <home>/trust-roots.
    trust_roots_dir: str = ""
    # Checking one submission's signatures takes at most this long; past it a "require"
    # submission is deferred (451) and a "record" one is accepted unchecked.
    timeout_seconds: float = 20.0
    rules: tuple[DocumentRuleConfig, ...] = ()


@dataclass(frozen=True)
class SmsConfig:
    # "outbox": <home>/sms/sms.jsonl (development); "twilio"; "smpp" (carriers' brandname gateways).
    gateway: str = "outbox"
    twilio_account_sid: str = ""
    twilio_auth_token: Secret = Secret("")
    # Exactly one of: a Messaging Service, or a sender (registered brandname or number).
    twilio_messaging_service_sid: str = ""
    twilio_from: str = ""
    smpp_host: str = ""
    smpp_port: int = 2775
    smpp_system_id: str = ""
    smpp_password: Secret = Secret("")
    smpp_source_addr: str = ""  # the registered brandname, e.g. "UBNDTPHCM"
    concurrency: int = 10


@dataclass(frozen=True)
class ScoringConfig:
    # The HR scoring model in force for periods not yet closed; "" is the shipped
    # config/scoring/model-2026.1.toml. A closed period keeps the model it was closed with.
    model_file: str = ""
    # Public holidays ([[holidays]] date, name); "" is the shipped config/holidays.toml.
    holidays_file: str = ""
    # A Vietnam day is rolled up into usage_month this many minutes after it ends (a
    # refusal's ledger line is committed just after its time), then read from the rollup.
    rollup_grace_minutes: int = 15


@dataclass(frozen=True)
class PolicySettings:
    """The parts of the config that policies read, gathered in one frozen object."""

    domains: DomainsConfig
    limits: LimitsConfig
    classification: ClassificationConfig


@dataclass(frozen=True)
class Config:
    source: str = "<defaults>"
    server: ServerConfig = field(default_factory=ServerConfig)
    listen: ListenConfig = field(default_factory=ListenConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    domains: DomainsConfig = field(default_factory=DomainsConfig)
    dkim: DKIMConfig = field(default_factory=DKIMConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    classification: ClassificationConfig = field(default_factory=ClassificationConfig)
    policies: PoliciesConfig = field(default_factory=PoliciesConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    invites: InvitesConfig = field(default_factory=InvitesConfig)
    sms: SmsConfig = field(default_factory=SmsConfig)
    documents: DocumentsConfig = field(default_factory=DocumentsConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)

    # ---- derived paths -------------------------------------------------
    @property
    def home(self) -> Path:
        return Path(self.server.home).expanduser().resolve()

    @property
    def scoring_model_path(self) -> Path:
        from mailhub.scoring.modelfile import SHIPPED_MODEL
        return Path(self.scoring.model_file).expanduser() if self.scoring.model_file else SHIPPED_MODEL

    @property
    def holidays_path(self) -> Path:
        from mailhub.scoring.modelfile import SHIPPED_HOLIDAYS
        return Path(self.scoring.holidays_file).expanduser() if self.scoring.holidays_file else SHIPPED_HOLIDAYS

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.home / 'mailhub.db'}"

    @property
    def tls_cert_path(self) -> Path:
        return Path(self.tls.cert_file) if self.tls.cert_file else self.home / "tls" / "cert.pem"

    @property
    def tls_key_path(self) -> Path:
        return Path(self.tls.key_file) if self.tls.key_file else self.home / "tls" / "key.pem"

    @property
    def dkim_keys_dir(self) -> Path:
        return Path(self.dkim.keys_dir) if self.dkim.keys_dir else self.home / "dkim"

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    @property
    def sms_outbox_dir(self) -> Path:
        return self.home / "sms"

    @property
    def trust_roots_path(self) -> Path:
        return Path(self.documents.trust_roots_dir).expanduser() if self.documents.trust_roots_dir \
            else self.home / "trust-roots"

    @property
    def rsvp_key_path(self) -> Path:
        return self.home / "rsvp.key"

    def listen_address(self, name: str) -> ListenAddress:
        return ListenAddress.parse(getattr(self.listen, name), f"listen.{name}")

    @property
    def policy_settings(self) -> PolicySettings:
        return PolicySettings(self.domains, self.limits, self.classification)


ENV_OVERRIDES = {
    "MAILHUB_HOME": ("server", "home"),
    "MAILHUB_DATABASE_URL": ("database", "url"),
    "MAILHUB_SUBMISSION_LISTEN": ("listen", "submission"),
    "MAILHUB_SUBMISSIONS_LISTEN": ("listen", "submissions"),
    "MAILHUB_HTTP_LISTEN": ("listen", "http"),
}

_CHOICES = {
    ("delivery", "mode"): ("outbox", "relay", "mx"),
    ("delivery", "relay_tls"): ("none", "may", "starttls", "require-starttls", "tls"),
    ("delivery.routes", "protocol"): ("smtp", "lmtp"),
    ("documents.rules", "mode"): ("record", "require"),
    ("delivery.routes", "tls"): ("none", "may", "starttls", "require-starttls", "tls"),
    ("limits", "external_recipients"): ("allow", "deny"),
    ("server", "event_loop"): ("uvloop", "asyncio"),
    ("sms", "gateway"): ("outbox", "twilio", "smpp"),
}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the dataclass field type ``tp``; name ``key`` on error."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        if dataclasses.is_dataclass(item_tp):  # an array of tables: [[section.name]]
            source, _, name = key.rpartition(": ")
            return tuple(_build_section(item_tp, v, f"{name}[{i}]", source, choices_key=name)
                         for i, v in enumerate(value))
        return tuple(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if value < 0:
            raise ConfigError(f"{key}: must not be negative, got {value}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if value < 0:
            raise ConfigError(f"{key}: must not be negative, got {value}")
        return float(value)
    if tp in (str, Secret):
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return tp(value)
    raise AssertionError(f"unsupported config type {tp} for {key}")


def _build_section(cls: type, data: Any, section: str, source: str, choices_key: str | None = None) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: [{section}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for name in data:
        if name not in known:
            raise ConfigError(f"{source}: unknown key {section}.{name}")
    values = {}
    for name, value in data.items():
        key = f"{section}.{name}"
        values[name] = _coerce(value, hints[name], f"{source}: {key}")
        choices = _CHOICES.get((choices_key or section, name))
        if choices and values[name] not in choices:
            raise ConfigError(f"{source}: {key}: expected one of {', '.join(choices)}, got {value!r}")
    return cls(**values)


def config_from_mapping(data: Mapping[str, Any], source: str = "<mapping>",
                        environ: Mapping[str, str] | None = None) -> Config:
    """Build and validate a :class:`Config` from parsed TOML plus environment overrides."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for var, (section, name) in ENV_OVERRIDES.items():
        if environ and environ.get(var):
            data.setdefault(section, {})[name] = environ[var]
    hints = typing.get_type_hints(Config)
    sections = {}
    for name, value in data.items():
        if name == "source" or name not in hints:
            raise ConfigError(f"{source}: unknown section [{name}]")
        sections[name] = _build_section(hints[name], value, name, source)
    config = Config(source=source, **sections)
    _check(config)
    return config


def _check(config: Config) -> None:
    src = config.source
    for name in ("submission", "submissions", "http") + (("replies",) if config.listen.replies else ()):
        try:
            config.listen_address(name)
        except ConfigError as exc:
            raise ConfigError(f"{src}: {exc}") from None
    for proxy in config.listen.http_trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(f"{src}: listen.http_trusted_proxies: not an IP address or network: {proxy!r}") from None
    if not config.domains.official:
        raise ConfigError(f"{src}: domains.official: at least one official domain is required")
    _check_delivery(config.delivery, src)
    _check_invites(config.invites, config.sms, src)
    _check_documents(config, src)
    _check_scoring(config, src)
    if config.server.processes < 1:
        raise ConfigError(f"{src}: server.processes: must be at least 1")
    if config.queue.group_commit_max < 1:
        raise ConfigError(f"{src}: queue.group_commit_max: must be at least 1")
    if bool(config.tls.cert_file) != bool(config.tls.key_file):
        raise ConfigError(f"{src}: tls.cert_file and tls.key_file: give both or neither")
    # local imports: the policies package imports config types
    from policies.addresses import check_domains
    from policies.registry import check_policy_names

    check_domains(config.domains, src)
    check_policy_names(config.policies, src)


def _check_delivery(d: DeliveryConfig, src: str) -> None:
    if d.mode == "relay" and not d.relay_host:
        raise ConfigError(f"{src}: delivery.relay_host: required when delivery.mode = \"relay\"")
    for key in ("concurrency", "per_destination_concurrency"):
        if getattr(d, key) < 1:
            raise ConfigError(f"{src}: delivery.{key}: must be at least 1")
    if not 0 < d.retry_min_seconds <= d.retry_max_seconds:
        raise ConfigError(f"{src}: delivery.retry_min_seconds: must be above 0 and at most retry_max_seconds")
    if not 0 <= d.retry_jitter < 1:
        raise ConfigError(f"{src}: delivery.retry_jitter: must be at least 0 and below 1")
    if d.max_age_hours <= 0:
        raise ConfigError(f"{src}: delivery.max_age_hours: must be above 0")
    if d.lease_seconds < 5:
        raise ConfigError(f"{src}: delivery.lease_seconds: must be at least 5")
    if d.timeout_seconds <= 0:
        raise ConfigError(f"{src}: delivery.timeout_seconds: must be above 0")
    for i, entry in enumerate(d.dns_servers):  # the resolver parses them fully at start
        if not entry.strip() or any(c.isspace() for c in entry):
            raise ConfigError(f"{src}: delivery.dns_servers[{i}]: expected an address or address:port, got {entry!r}")
    if d.relay_tls == "may" and d.relay_username:
        raise ConfigError(f"{src}: delivery.relay_tls: \"may\" does not check the relay's certificate, so the "
                          "password of relay_username could go to anyone: use \"require-starttls\"")
    seen: dict[str, int] = {}
    for i, route in enumerate(d.routes):
        key = f"{src}: delivery.routes[{i}]"
        if route.tls == "may" and route.username:
            raise ConfigError(f"{key}.tls: \"may\" does not check the certificate, so the password of "
                              "username could go to anyone: use \"require-starttls\"")
        if not route.host:
            raise ConfigError(f"{key}.host: required")
        if not route.domains:
            raise ConfigError(f"{key}.domains: at least one domain is required")
        for domain in route.domains:
            name = domain.lower().rstrip(".")
            if not name.lstrip(".") or any(c.isspace() or c in "@/:" for c in name):
                raise ConfigError(f"{key}.domains: not a domain: {domain!r}")
            if name in seen:
                raise ConfigError(f"{key}.domains: {domain!r} is already routed by delivery.routes[{seen[name]}]")
            seen[name] = i


def _check_scoring(config: Config, src: str) -> None:
    # The model and the calendar are read here too, so a bad file stops the start, not HR's
    # first report; each error names the file and the key.
    from mailhub.scoring.modelfile import load_holidays, load_model

    if config.scoring.rollup_grace_minutes < 0:
        raise ConfigError(f"{src}: scoring.rollup_grace_minutes: must not be negative")
    load_model(config.scoring_model_path)
    load_holidays(config.holidays_path)


def _check_documents(config: Config, src: str) -> None:
    from mailhub.signatures.rules import check_rule_recipients

    for i, rule in enumerate(config.documents.rules):
        check_rule_recipients(rule.recipients, f"{src}: documents.rules[{i}].recipients")
    if any(r.mode == "require" for r in config.documents.rules) and "signed_documents" not in config.policies.data:
        raise ConfigError(f"{src}: policies.data: a documents rule says \"require\" but the signed_documents "
                          "rule is not in the list: nothing would be refused")


def _check_invites(invites: InvitesConfig, sms: SmsConfig, src: str) -> None:
    import ipaddress

    for network in invites.reply_intake_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(f"{src}: invites.reply_intake_networks: {network!r} is not a network "
                              "(e.g. \"10.0.0.0/8\")") from None
    if not invites.public_url.startswith(("http://", "https://")) or any(c.isspace() for c in invites.public_url):
        raise ConfigError(f"{src}: invites.public_url: expected an http:// or https:// address, "
                          f"got {invites.public_url!r}")
    if not 0 <= invites.build_processes <= 64:
        raise ConfigError(f"{src}: invites.build_processes: expected 0 (one per core) to 64, "
                          f"got {invites.build_processes}")
    if sms.gateway == "twilio":
        if not sms.twilio_account_sid or not sms.twilio_auth_token:
            raise ConfigError(f"{src}: sms.twilio_account_sid and sms.twilio_auth_token: required when "
                              "sms.gateway = \"twilio\"")
        if bool(sms.twilio_messaging_service_sid) == bool(sms.twilio_from):
            raise ConfigError(f"{src}: sms.twilio_messaging_service_sid / sms.twilio_from: give exactly one")
    if sms.gateway == "smpp" and not (sms.smpp_host and sms.smpp_system_id and sms.smpp_source_addr):
        raise ConfigError(f"{src}: sms.smpp_host, sms.smpp_system_id and sms.smpp_source_addr: required when "
                          "sms.gateway = \"smpp\"")
    if sms.concurrency < 1:
        raise ConfigError(f"{src}: sms.concurrency: must be at least 1")


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load ``path`` (default: ``MAILHUB_CONFIG`` from ``environ``, else the shipped file)."""
    environ = environ or {}
    path = Path(path or environ.get("MAILHUB_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_mapping(data, str(path), environ)
