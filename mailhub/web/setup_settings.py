"""The loaded configuration as the console shows it: read-only, grouped by TOML section,
every value written as it would be in the file, secrets hidden (:mod:`setup_secrets`).

Walks the :class:`~mailhub.config.Config` dataclasses rather than listing keys by hand, so a
key added to the configuration shows up here (and is hidden if its name or type says secret).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from mailhub.config import Config, Secret
from mailhub.web.setup_secrets import HIDDEN, hide_passwords_in, is_hidden, shown

# Sections in the order an administrator looks for them, with their headings (vi, en).
SECTIONS = (
    ("domains", "Tên miền chính thức", "Official domains"),
    ("dkim", "Chữ ký DKIM", "DKIM signing"),
    ("policies", "Quy tắc kiểm tra thư", "Mail policies"),
    ("limits", "Giới hạn gửi thư", "Sending limits"),
    ("classification", "Tài liệu mật", "Classified documents"),
    ("documents", "Văn bản ký số", "Digitally signed documents"),
    ("delivery", "Chuyển thư đi", "Delivery"),
    ("sms", "Cổng SMS", "SMS gateway"),
    ("invites", "Giấy mời họp", "Meeting invitations"),
    ("scoring", "Chấm điểm thi đua", "Usage scoring"),
    ("auth", "Đăng nhập và khóa tài khoản", "Sign-in and lockout"),
    ("queue", "Hàng đợi thư", "Mail queue"),
    ("server", "Máy chủ", "Server"),
    ("listen", "Địa chỉ lắng nghe", "Listening addresses"),
    ("database", "Cơ sở dữ liệu", "Database"),
    ("tls", "Chứng chỉ TLS", "TLS certificate"),
)


@dataclass(frozen=True)
class Setting:
    key: str  # as in the file: "relay_password"
    value: str  # a TOML literal, secrets hidden; "" for a hidden secret that is not set
    hidden: bool = False  # a secret: ``value`` is "***" (set) or "" (not set)
    default: bool = False  # the value is the built-in default


@dataclass(frozen=True)
class TableEntry:
    """One ``[[section.name]]`` table (a delivery route, a documents rule)."""

    name: str  # "delivery.routes"
    index: int  # 1-based, in file order
    settings: list[Setting]


@dataclass(frozen=True)
class Section:
    name: str
    vi: str
    en: str
    settings: list[Setting]
    tables: list[TableEntry] = field(default_factory=list)


def toml_literal(value: object) -> str:
    """``value`` written as in the TOML file, with passwords inside strings hidden."""
    if isinstance(value, Secret):
        return json.dumps(HIDDEN)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    return json.dumps(hide_passwords_in(str.__str__(value)), ensure_ascii=False)


def _settings(obj: object, prefix: str) -> tuple[list[Setting], list[TableEntry]]:
    defaults = type(obj)()
    settings, tables = [], []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for i, entry in enumerate(value, 1):
                tables.append(TableEntry(f"{prefix}.{f.name}", i, _settings(entry, f"{prefix}.{f.name}")[0]))
            continue
        is_default = value == getattr(defaults, f.name)
        if is_hidden(f.name, value):
            settings.append(Setting(f.name, HIDDEN if len(value) else "", hidden=True, default=is_default))
        else:
            settings.append(Setting(f.name, toml_literal(value), default=is_default))
    return settings, tables


def config_sections(config: Config) -> list[Section]:
    """Every section of ``config`` (those not in :data:`SECTIONS` last, by name)."""
    names = [f.name for f in dataclasses.fields(config) if dataclasses.is_dataclass(getattr(config, f.name))]
    known = {name: (vi, en) for name, vi, en in SECTIONS}
    ordered = [n for n, _, _ in SECTIONS if n in names] + sorted(n for n in names if n not in known)
    sections = []
    for name in ordered:
        settings, tables = _settings(getattr(config, name), name)
        vi, en = known.get(name, (name, name))
        sections.append(Section(name, vi, en, settings, tables))
    return sections


def effective_paths(config: Config) -> list[tuple[str, str, str]]:
    """(Vietnamese, English, value) of what the empty defaults resolve to on this server."""
    return [
        ("Thư mục dữ liệu", "Data folder", str(config.home)),
        ("Cơ sở dữ liệu", "Database", shown("url", config.database_url)),
        ("Thư mục khóa DKIM", "DKIM keys folder", str(config.dkim_keys_dir)),
        ("Chứng chỉ TLS", "TLS certificate", str(config.tls_cert_path)),
        ("Tệp mô hình chấm điểm", "Scoring model file", str(config.scoring_model_path)),
        ("Tệp ngày lễ", "Public holidays file", str(config.holidays_path)),
        ("Chứng chỉ gốc tin cậy (văn bản ký số)", "Trusted roots (signed documents)",
         str(config.trust_roots_path)),
    ]
