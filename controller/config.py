"""`callrec.toml` + `CALLREC_*` environment overrides, validated before anything is touched.

Every key has a type and, where it matters, a set of allowed values. A bad value raises `ConfigError`
naming the key, the value and what is allowed; unknown keys are errors too, so a typo never silently
falls back to a default. Environment: `CALLREC_<SECTION>_<KEY>` (e.g. `CALLREC_DATABASE_URL`,
`CALLREC_API_PORT`), top-level keys as `CALLREC_<KEY>` (`CALLREC_STATE_DIR`), and PBX nodes by
index: `CALLREC_PBX_0_PASSWORD`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from controller.config_keys import check_keys, recipient_problem


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        shown = "<hidden>" if _is_secret(key) else repr(value)
        super().__init__(f"config: {key} = {shown} is invalid: expected {allowed}")


class ConfigErrors(ConfigError):
    """Several configuration problems, reported together so an admin fixes them in one go."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        first = errors[0]
        ValueError.__init__(self, f"config: {len(errors)} problems:\n" + "\n".join(f"  - {e}" for e in errors))
        self.key, self.value, self.allowed = first.key, first.value, first.allowed


class _Problems:
    """Collects every ConfigError of one load instead of stopping at the first."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def add(self, key: str, value: Any, allowed: str) -> None:
        self.errors.append(ConfigError(key, value, allowed))

    def raise_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ConfigErrors(self.errors)


SECRET_KEYS = ("password", "secret", "secret_key", "access_key", "url")


def _is_secret(key: str) -> bool:
    """`pbx[0].password`, and the environment's spelling of such a key (`CALLREC_PBX_X_PASSWORD`)."""
    last = key.rsplit(".", 1)[-1].lower()
    return last in SECRET_KEYS or last.endswith(tuple("_" + k for k in SECRET_KEYS))


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = ""  # empty → embedded PostgreSQL in state_dir/pgdata
    pool_min: int = 1
    pool_max: int = 10


@dataclass(frozen=True)
class PbxConfig:
    name: str
    type: str  # freeswitch | asterisk
    host: str = "127.0.0.1"
    port: int = 0  # 0 → 8021 (freeswitch) / 5038 (asterisk)
    password: str = ""  # freeswitch ESL password
    username: str = ""  # asterisk AMI user
    secret: str = ""  # asterisk AMI secret
    account: str = "main"
    inbound_contexts: tuple[str, ...] = ()  # contexts whose calls are always inbound
    record_dir: str = ""  # the spool as the PBX sees it (shared mount); empty → spool.dir

    @property
    def effective_port(self) -> int:
        return self.port or (8021 if self.type == "freeswitch" else 5038)


@dataclass(frozen=True)
class SpoolConfig:
    dir: str = ""  # empty → state_dir/spool


@dataclass(frozen=True)
class StorageConfig:
    backend: str = "local"  # local | s3 | webdav
    path: str = ""  # local: empty → state_dir/recordings
    endpoint: str = ""  # s3
    bucket: str = ""
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: str = ""
    prefix: str = ""
    url: str = ""  # webdav: http(s):// URL of the WebDAV root
    username: str = ""
    password: str = ""
    verify_tls: bool = True
    base_path: str = ""  # webdav: folder under url (created when missing)
    object_lock: str = ""  # s3 WORM: "" | compliance | governance (S3 Object Lock until the retention date)


@dataclass(frozen=True)
class TrustedKey:
    """Another installation's manifest key, pinned by its id (a swapped file is an error)."""

    id: str  # ed25519:<16 hex>, as `callrec keys generate` / `import-archive` print it
    file: str  # its PEM public key


@dataclass(frozen=True)
class EncryptionConfig:
    recipients: tuple[str, ...] = ()  # age X25519 public recipients
    recipients_file: str = ""  # more recipients, one per line (`callrec keys rotate` rewrites it)
    signing_key_file: str = ""  # empty → state_dir/keys/signing.key
    identity_file: str = ""  # only where playback / decrypt runs
    trusted_signing_keys: tuple[TrustedKey, ...] = ()  # verify/import also accept manifests these signed


@dataclass(frozen=True)
class AccountEncryptionConfig:
    """An account's own keys: its recordings are encrypted only to these recipients."""

    recipients: tuple[str, ...] = ()
    recipients_file: str = ""
    signing_key_file: str = ""  # empty → the global signing key


@dataclass(frozen=True)
class AccountConfig:
    """`[accounts.<id>]` of callrec.toml: what one account does differently from the installation."""

    encryption: AccountEncryptionConfig | None = None  # its own keys; None → [encryption]
    storage: StorageConfig | None = None  # its own bucket / WebDAV folder / directory; None → [storage]


@dataclass(frozen=True)
class ApiConfig:
    bind: str = "127.0.0.1"
    port: int = 8080
    enabled: bool = True
    # The API's address as outsiders reach it (proxy, TLS): "https://rec.example.com" or with a path
    # prefix. Only absolute links handed out (webhook download links) use it; unset → none are made.
    public_url: str = ""


def default_finalize_workers() -> int:
    """One finalize job loop per core this process may run on: encryption is the CPU-heavy part of
    a recording's life, and each loop already overlaps its job's disk waits with its next job."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS)
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class FinalizeConfig:
    workers: int = field(default_factory=default_finalize_workers)
    max_attempts: int = 20
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    file_stable_seconds: float = 2.0  # a spool file untouched this long is closed by the PBX
    poll_interval_seconds: float = 5.0  # job poll when no NOTIFY callrec_finalize arrives
    lease_seconds: int = 600  # a claimed job is re-claimable after this (crashed instance)


@dataclass(frozen=True)
class RetentionConfig:
    purge_interval_minutes: int = 60
    require_verified_backup: bool = False  # purge only what a verified backup holds (see [backup])


@dataclass(frozen=True)
class BackupConfig:
    """`[backup]` + `[backup.storage]`: scheduled export archives of a rolling window."""

    schedule: str = ""  # cron in UTC ("30 2 * * *" = daily 02:30); empty → no scheduled backups
    window_days: int = 7  # each run archives the recordings started in the last N days
    storage: StorageConfig | None = None  # where the archives go (same keys as [storage])


@dataclass(frozen=True)
class WebhooksConfig:
    concurrency: int = 8  # outbox rows one instance POSTs at once (one batch)
    timeout_seconds: float = 10.0  # per POST
    retry_period_hours: float = 24.0  # then the event is dead (listed, redeliverable)
    backoff_base_seconds: float = 5.0  # first retry; doubles each attempt
    backoff_max_seconds: float = 600.0  # cap of the doubling
    poll_interval_seconds: float = 1.0  # outbox poll when the last batch was not full
    download_link_minutes: int = 15  # lifetime of a recording.stored download link (opted-in endpoints)


def default_state_dir() -> str:
    """/var/lib/callrec for a system service (root), else the user's XDG state directory."""
    if os.geteuid() == 0:
        return "/var/lib/callrec"
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "callrec")


@dataclass(frozen=True)
class Config:
    state_dir: str = field(default_factory=default_state_dir)
    log_level: str = "info"
    node_id: str = ""  # this instance's name for leases and job claims; empty → hostname:pid
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    pbx: tuple[PbxConfig, ...] = ()
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    encryption: EncryptionConfig = field(default_factory=EncryptionConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    finalize: FinalizeConfig = field(default_factory=FinalizeConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    accounts: dict[str, AccountConfig] = field(default_factory=dict)  # [accounts.<id>.encryption|storage]

    # Paths with defaults derived from state_dir.
    @property
    def spool_dir(self) -> Path:
        return Path(self.spool.dir or Path(self.state_dir) / "spool")

    @property
    def storage_path(self) -> Path:
        return Path(self.storage.path or Path(self.state_dir) / "recordings")

    @property
    def signing_key_path(self) -> Path:
        return Path(self.encryption.signing_key_file or Path(self.state_dir) / "keys" / "signing.key")

    @property
    def pgdata_dir(self) -> Path:
        return Path(self.state_dir) / "pgdata"

    def redacted(self) -> dict[str, Any]:
        """The config as a dict with secrets masked, for logs and `/health`."""
        return _redact(_to_dict(self))


SECTIONS: dict[str, type] = {
    "database": DatabaseConfig,
    "spool": SpoolConfig,
    "storage": StorageConfig,
    "encryption": EncryptionConfig,
    "api": ApiConfig,
    "finalize": FinalizeConfig,
    "retention": RetentionConfig,
    "backup": BackupConfig,
    "webhooks": WebhooksConfig,
}

ALLOWED: dict[str, tuple[str, ...]] = {
    "log_level": ("debug", "info", "warning", "error"),
    "pbx.type": ("freeswitch", "asterisk"),
    "storage.backend": ("local", "s3", "webdav"),
}


def load_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None, *, service: bool = False
) -> Config:
    """Read the TOML file (if any), apply environment overrides, validate, return a `Config`.

    Every problem is collected and raised at once (`ConfigErrors` when there are several). With
    `service=True` (`callrec run`) the key material is checked too: at least one recipient, and the
    configured key files exist, parse and are readable by their owner only.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError("--config", str(p), "an existing TOML file") from None
        except PermissionError:
            raise ConfigError("--config", str(p), "a TOML file this user can read") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError("--config", str(p), f"valid TOML ({e})") from None
    problems = _Problems()
    _apply_env(raw, env, problems)
    cfg = _build(raw, problems)
    _validate(cfg, problems)
    if service:
        check_keys(cfg, problems)
    problems.raise_any()
    return cfg


def _apply_env(raw: dict[str, Any], env: Mapping[str, str], problems: _Problems) -> None:
    top = {f.name for f in fields(Config)} - set(SECTIONS) - {"pbx", "accounts"}
    for name, value in env.items():
        if not name.startswith("CALLREC_") or name.startswith("CALLREC_TEST_"):
            continue
        rest = name[len("CALLREC_") :].lower()
        if rest in top:
            raw[rest] = value
            continue
        section, _, key = rest.partition("_")
        if section in SECTIONS and key:
            raw.setdefault(section, {})[key] = value
        elif section == "pbx":
            idx, _, key = key.partition("_")
            if not idx.isdigit() or not key:
                problems.add(name, value, "CALLREC_PBX_<index>_<key>")
                continue
            nodes = raw.setdefault("pbx", [])
            while len(nodes) <= int(idx):
                nodes.append({})
            nodes[int(idx)][key] = value
        # Other CALLREC_* variables (e.g. CALLREC_CONFIG) are not config keys.


def _build(raw: dict[str, Any], problems: _Problems) -> Config:
    """A Config from the valid values; each bad one is recorded and left at its default."""
    top_fields = {f.name: f for f in fields(Config)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            if key not in top_fields:
                raise ConfigError(key, value, f"one of the known keys: {', '.join(sorted(top_fields))}")
            if key == "backup":
                kwargs["backup"] = _build_backup(value, problems)
            elif key in SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(key, value, "a table")
                kwargs[key] = _build_section(SECTIONS[key], key, value, problems)
            elif key == "accounts":
                kwargs["accounts"] = _build_accounts(value, problems)
            elif key == "pbx":
                if not isinstance(value, list):
                    raise ConfigError("pbx", value, "an array of tables ([[pbx]])")
                nodes = (_build_pbx(i, v, problems) for i, v in enumerate(value))
                kwargs["pbx"] = tuple(n for n in nodes if n is not None)
            else:
                kwargs[key] = _coerce(key, value, top_fields[key].type)
        except ConfigError as e:
            problems.errors.append(e)
    return Config(**kwargs)


def _build_section(cls: type, prefix: str, values: dict[str, Any], problems: _Problems) -> Any:
    known = {f.name: f for f in fields(cls)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        full = f"{prefix}.{key}"
        try:
            if key not in known:
                raise ConfigError(full, value, f"one of the known keys: {', '.join(sorted(known))}")
            out[key] = _coerce(full, value, known[key].type)
        except ConfigError as e:
            problems.errors.append(e)
    try:
        return cls(**out)
    except TypeError:  # a required field (a node's name or type) had a bad value, already recorded
        return None


def _build_accounts(value: Any, problems: _Problems) -> dict[str, AccountConfig]:
    """[accounts.<id>.encryption] (per-account keys) and [accounts.<id>.storage] (its own store)."""
    if not isinstance(value, dict):
        raise ConfigError("accounts", value, "a table of accounts ([accounts.<id>.encryption], [...storage])")
    subtables: dict[str, type] = {"encryption": AccountEncryptionConfig, "storage": StorageConfig}
    out: dict[str, AccountConfig] = {}
    for acc_id, acc in value.items():
        if not isinstance(acc, dict):
            problems.add(f"accounts.{acc_id}", acc, "a table")
            continue
        built: dict[str, Any] = {}
        for key, v in acc.items():
            if key not in subtables:
                problems.add(f"accounts.{acc_id}.{key}", v, "one of the known keys: " + ", ".join(subtables))
            elif not isinstance(v, dict):
                problems.add(f"accounts.{acc_id}.{key}", v, "a table")
            else:
                built[key] = _build_section(subtables[key], f"accounts.{acc_id}.{key}", v, problems)
        out[acc_id] = AccountConfig(**built)
    return out


def _build_backup(value: Any, problems: _Problems) -> BackupConfig:
    if not isinstance(value, dict):
        raise ConfigError("backup", value, "a table")
    scalars = {k: v for k, v in value.items() if k != "storage"}
    built: BackupConfig = _build_section(BackupConfig, "backup", scalars, problems) or BackupConfig()
    sub = value.get("storage")
    if sub is not None and not isinstance(sub, dict):
        problems.add("backup.storage", sub, "a table ([backup.storage])")
    elif sub is not None:
        built = replace(built, storage=_build_section(StorageConfig, "backup.storage", sub, problems))
    return built


def _build_pbx(i: int, value: Any, problems: _Problems) -> PbxConfig | None:
    if not isinstance(value, dict):
        problems.add(f"pbx[{i}]", value, "a table")
        return None
    missing = [r for r in ("name", "type") if not value.get(r)]
    for required in missing:
        problems.add(f"pbx[{i}].{required}", value.get(required), "a non-empty string")
    if missing:
        return None
    node: PbxConfig | None = _build_section(PbxConfig, f"pbx[{i}]", value, problems)
    return node


def _coerce(key: str, value: Any, typ: Any) -> Any:
    t = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    if t == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(key, value, "true or false")
    if t == "int":
        if isinstance(value, bool):
            raise ConfigError(key, value, "an integer")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(key, value, "an integer") from None
    if t == "float":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(key, value, "a number") from None
    if t == "tuple[TrustedKey, ...]":
        return _trusted_keys(key, value)
    if t.startswith("tuple"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, value, "a list of strings")
        return tuple(value)
    if t == "str":
        if not isinstance(value, str):
            raise ConfigError(key, value, "a string")
        return value
    return value


def _trusted_keys(key: str, value: Any) -> tuple[TrustedKey, ...]:
    """A list of {id, file} tables (TOML), or "ID=FILE,ID=FILE" (environment)."""
    allowed = 'a list of {id = "ed25519:<16 hex>", file = "/path/key.pub"} tables'
    if isinstance(value, str):
        pairs = [v.strip().split("=", 1) for v in value.split(",") if v.strip()]
        value = [dict(zip(("id", "file"), p, strict=False)) for p in pairs]
    if not isinstance(value, list):
        raise ConfigError(key, value, allowed)
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != {"id", "file"}:
            raise ConfigError(f"{key}[{i}]", item, allowed)
        kid, file = item["id"], item["file"]
        if not isinstance(kid, str) or not re.fullmatch(r"ed25519:[0-9a-f]{16}", kid):
            raise ConfigError(f"{key}[{i}].id", kid, "a signing key id ed25519:<16 hex digits>")
        if not isinstance(file, str) or not file:
            raise ConfigError(f"{key}[{i}].file", file, "the path of the key's PEM public key file")
        out.append(TrustedKey(kid, file))
    return tuple(out)


def _validate(cfg: Config, problems: _Problems) -> None:
    def allowed(key: str, value: str) -> None:
        options = ALLOWED[key]
        if value not in options:
            problems.add(key, value, "one of " + ", ".join(options))

    allowed("log_level", cfg.log_level)
    if not cfg.state_dir:
        problems.add("state_dir", cfg.state_dir, "a directory path")
    if cfg.database.url and not cfg.database.url.startswith(("postgresql://", "postgres://")):
        problems.add("database.url", cfg.database.url, "a postgresql:// DSN, or unset for embedded PostgreSQL")
    if not 1 <= cfg.database.pool_min <= cfg.database.pool_max:
        problems.add("database.pool_min", cfg.database.pool_min, "1 <= pool_min <= pool_max")
    names = set()
    for i, node in enumerate(cfg.pbx):
        allowed("pbx.type", node.type)
        if node.name in names:
            problems.add(f"pbx[{i}].name", node.name, "a name no other [[pbx]] node uses")
        names.add(node.name)
        if not 0 <= node.port <= 65535:
            problems.add(f"pbx[{i}].port", node.port, "a TCP port 1-65535")
        if node.type == "asterisk" and not (node.username and node.secret):
            problems.add(f"pbx[{i}].username", node.username, "AMI username and secret for an asterisk node")
        if node.type == "freeswitch" and not node.password:
            problems.add(f"pbx[{i}].password", "", "the ESL password for a freeswitch node")
    _validate_storage(problems, "storage", cfg.storage)
    for account_id, acct in cfg.accounts.items():
        if acct.storage is not None:
            _validate_storage(problems, f"accounts.{account_id}.storage", acct.storage, own=True)
    _validate_backup(problems, cfg)
    tables = [("encryption", cfg.encryption.recipients)] + [
        (f"accounts.{a}.encryption", acc.encryption.recipients)
        for a, acc in cfg.accounts.items()
        if acc.encryption is not None
    ]
    for table, recipients in tables:
        for i, r in enumerate(recipients):
            why = recipient_problem(r)
            if why:
                problems.add(
                    f"{table}.recipients[{i}]",
                    r,
                    f"an age X25519 recipient (age1..., as `callrec keys generate` prints it): {why}",
                )
    try:
        ipaddress.ip_address(cfg.api.bind)
    except ValueError:
        if cfg.api.bind != "localhost":
            problems.add("api.bind", cfg.api.bind, "an IP address (default 127.0.0.1)")
    if not 0 <= cfg.api.port <= 65535:
        problems.add("api.port", cfg.api.port, "a TCP port 0-65535 (0 = any free port)")
    if cfg.api.public_url and (why := public_url_problem(cfg.api.public_url)):
        problems.add(
            "api.public_url", cfg.api.public_url, f"the API's public base URL, e.g. https://rec.example.com ({why})"
        )
    if cfg.finalize.workers < 1:
        problems.add("finalize.workers", cfg.finalize.workers, "an integer >= 1")
    if cfg.webhooks.concurrency < 1:
        problems.add("webhooks.concurrency", cfg.webhooks.concurrency, "an integer >= 1")
    for key in (
        "timeout_seconds",
        "retry_period_hours",
        "backoff_base_seconds",
        "backoff_max_seconds",
        "poll_interval_seconds",
    ):
        if getattr(cfg.webhooks, key) <= 0:
            problems.add(f"webhooks.{key}", getattr(cfg.webhooks, key), "a number > 0")
    if not 1 <= cfg.webhooks.download_link_minutes <= 1440:
        problems.add("webhooks.download_link_minutes", cfg.webhooks.download_link_minutes, "whole minutes, 1-1440")


def public_url_problem(url: str) -> str:
    """Why `url` cannot be the base of the links the service hands out ("" when it can)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a bad port
    except ValueError as e:
        return str(e)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return "no credentials in it"
    if parts.query or parts.fragment or url.endswith(("?", "#")) or any(c.isspace() for c in url):
        return "no query, fragment or spaces"
    return ""


def _validate_storage(problems: _Problems, prefix: str, st: StorageConfig, *, own: bool = False) -> None:
    """[storage], or an account's own store (`own`: a local one needs its own path)."""
    options = ALLOWED["storage.backend"]
    if st.backend not in options:
        problems.add(f"{prefix}.backend", st.backend, "one of " + ", ".join(options))
    if st.backend == "s3":
        for key in ("endpoint", "bucket"):
            if not getattr(st, key):
                problems.add(f"{prefix}.{key}", "", "a value when backend = 's3'")
    if st.backend == "webdav":
        _validate_webdav_url(problems, f"{prefix}.url", st.url)
    if st.object_lock and st.object_lock not in ("compliance", "governance"):
        problems.add(f"{prefix}.object_lock", st.object_lock, "compliance or governance (or unset: no WORM lock)")
    elif st.object_lock and st.backend != "s3":
        problems.add(f"{prefix}.object_lock", st.object_lock, "unset unless backend = 's3' (S3 Object Lock)")
    if st.backend == "local" and own and not st.path:
        problems.add(f"{prefix}.path", "", "the account's own directory when backend = 'local'")


def _validate_backup(problems: _Problems, cfg: Config) -> None:
    b = cfg.backup
    if b.storage is not None:
        _validate_storage(problems, "backup.storage", b.storage, own=True)
    if b.schedule:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(b.schedule)
        except ValueError as e:
            problems.add("backup.schedule", b.schedule, f"a cron expression 'min hour day month weekday' in UTC ({e})")
        if b.storage is None:
            problems.add("backup.storage", None, "a [backup.storage] table when backup.schedule is set")
    if b.window_days < 1:
        problems.add("backup.window_days", b.window_days, "an integer >= 1")
    if cfg.retention.require_verified_backup and b.storage is None:
        problems.add(
            "retention.require_verified_backup", True, "false, or a [backup.storage] (else nothing is ever purged)"
        )


def _validate_webdav_url(problems: _Problems, key: str, url: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.add(key, url, "an http:// or https:// URL of the WebDAV server when backend = 'webdav'")
    elif parts.username or parts.password:
        problems.add(key, url, "a URL without credentials (set username and password instead)")


def _to_dict(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: _to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple):
        return [_to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_dict(v) for k, v in obj.items()}
    return obj


def _redact(d: Any, key: str = "") -> Any:
    if isinstance(d, dict):
        return {k: _redact(v, k) for k, v in d.items()}
    if isinstance(d, list):
        return [_redact(v, key) for v in d]
    if key in SECRET_KEYS and d:
        return "***"
    return d
