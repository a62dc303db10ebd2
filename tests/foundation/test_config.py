import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from controller.config import ConfigError, ConfigErrors, load_config
from storage import crypto


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "callrec.toml"
    p.write_text(text)
    return p


def test_full_example_loads(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
state_dir = "/srv/callrec"
[database]
url = "postgresql://callrec@db/callrec"
[[pbx]]
name = "fs1"
type = "freeswitch"
password = "s3cret"
inbound_contexts = ["public"]
[[pbx]]
name = "ast1"
type = "asterisk"
username = "callrec"
secret = "x"
[storage]
backend = "s3"
endpoint = "http://127.0.0.1:9000"
bucket = "rec"
[encryption]
recipients = ["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"]
[api]
port = 9090
""",
        ),
        env={},
    )
    assert [p.effective_port for p in cfg.pbx] == [8021, 5038]
    assert cfg.pbx[0].inbound_contexts == ("public",)
    assert cfg.spool_dir == Path("/srv/callrec/spool")
    assert cfg.api.bind == "127.0.0.1"
    red = cfg.redacted()
    assert red["pbx"][0]["password"] == "***" and red["database"]["url"] == "***"


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[api]\nport = 9090\n[[pbx]]\nname = "fs1"\ntype = "freeswitch"\npassword = "a"\n')
    cfg = load_config(path, env={"CALLREC_API_PORT": "7000", "CALLREC_STATE_DIR": "/x", "CALLREC_PBX_0_PASSWORD": "b"})
    assert cfg.api.port == 7000 and cfg.state_dir == "/x" and cfg.pbx[0].password == "b"


@pytest.mark.parametrize(
    ("text", "env", "key", "allowed"),
    [
        ("[api]\nprot = 1\n", {}, "api.prot", "known keys"),
        ("logg_level = 'info'\n", {}, "logg_level", "known keys"),
        ("[api]\nport = 'eighty'\n", {}, "api.port", "an integer"),
        ("", {"CALLREC_API_PORT": "99999"}, "api.port", "TCP port"),
        ("[storage]\nbackend = 'ftp'\n", {}, "storage.backend", "local, s3"),
        ("[[pbx]]\nname = 'x'\ntype = 'yate'\n", {}, "pbx.type", "freeswitch, asterisk"),
        ("[[pbx]]\nname = 'x'\ntype = 'asterisk'\n", {}, "pbx[0].username", "AMI username"),
        ("[encryption]\nrecipients = ['ssh-ed25519 AAAA']\n", {}, "encryption.recipients[0]", "age1"),
        ("[encryption]\nrecipients = ['age1notakey']\n", {}, "encryption.recipients[0]", "age X25519 recipient"),
        ("", {"CALLREC_DATABASE_URL": "mysql://x"}, "database.url", "postgresql://"),
        ("", {"CALLREC_API_BIND": "not-an-ip"}, "api.bind", "IP address"),
        ("[api]\npublic_url = 'rec.example.com'\n", {}, "api.public_url", "http:// or https://"),
        ("[api]\npublic_url = 'https://u:pw@rec.example.com'\n", {}, "api.public_url", "no credentials"),
        ("", {"CALLREC_API_PUBLIC_URL": "https://rec.example.com/?a=1"}, "api.public_url", "no query"),
        ("[api]\npublic_url = 'https://rec.example.com:99999'\n", {}, "api.public_url", "public base URL"),
        ("[webhooks]\ndownload_link_minutes = 0\n", {}, "webhooks.download_link_minutes", "1-1440"),
    ],
)
def test_bad_values_name_key_value_and_allowed(tmp_path: Path, text: str, env: dict, key: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text), env=env)
    assert e.value.key == key
    assert allowed in str(e.value)


def test_secret_values_are_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, env={"CALLREC_DATABASE_URL": "mysql://user:hunter2@db"})
    assert "hunter2" not in str(e.value)


def test_cli_fails_fast_before_touching_anything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    r = subprocess.run(
        [sys.executable, "-m", "controller.cli", "run"],
        env={"CALLREC_STATE_DIR": str(state), "CALLREC_API_PORT": "http", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "api.port = 'http' is invalid: expected an integer" in r.stderr
    assert not state.exists()  # nothing created before validation


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = "[api]\nport = 'eighty'\nprot = 1\n[encryption]\nrecipients = ['age1notakey']\n[[pbx]]\nname = 'x'\n"
    with pytest.raises(ConfigErrors) as e:
        load_config(write(tmp_path, text), env={"CALLREC_LOG_LEVEL": "loud"})
    keys = [err.key for err in e.value.errors]
    assert sorted(keys) == sorted(["api.port", "api.prot", "encryption.recipients[0]", "pbx[0].type", "log_level"])
    message = str(e.value)
    assert message.startswith("config: 5 problems:")
    for key in keys:
        assert f"  - config: {key} = " in message


def _keys(d: Path, *, signing_mode: int = 0o600, identity_mode: int = 0o600) -> tuple[Path, Path, str]:
    d.mkdir(parents=True, exist_ok=True)
    ident = d / "identity.txt"
    subprocess.run(["age-keygen", "-o", str(ident)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(ident)], check=True, capture_output=True, text=True).stdout
    signing = d / "signing.key"
    crypto.generate_signing_key(signing)
    os.chmod(ident, identity_mode)
    os.chmod(signing, signing_mode)
    return ident, signing, recipient.strip()


def _service_config(tmp_path: Path, ident: Path, signing: Path, recipients: list[str]) -> Path:
    quoted = ", ".join(f'"{r}"' for r in recipients)
    return write(
        tmp_path,
        f'state_dir = "{tmp_path / "state"}"\n[encryption]\nrecipients = [{quoted}]\n'
        f'signing_key_file = "{signing}"\nidentity_file = "{ident}"\n',
    )


def test_service_start_accepts_good_keys(tmp_path: Path) -> None:
    ident, signing, recipient = _keys(tmp_path / "keys")
    cfg = load_config(_service_config(tmp_path, ident, signing, [recipient]), env={}, service=True)
    assert cfg.encryption.recipients == (recipient,)


def test_service_start_checks_key_files_and_permissions(tmp_path: Path) -> None:
    ident, signing, recipient = _keys(tmp_path / "keys", signing_mode=0o644, identity_mode=0o640)
    path = _service_config(tmp_path, ident, signing, [recipient])
    load_config(path, env={})  # other commands (verify, export ...) need no private key
    with pytest.raises(ConfigErrors) as e:
        load_config(path, env={}, service=True)
    by_key = {err.key: str(err) for err in e.value.errors}
    assert set(by_key) == {"encryption.signing_key_file", "encryption.identity_file"}
    assert (
        "mode 0644" in by_key["encryption.signing_key_file"]
        and f"chmod 600 {signing}" in by_key["encryption.signing_key_file"]
    )
    assert "mode 0640" in by_key["encryption.identity_file"]

    os.chmod(signing, 0o600)
    signing.write_text("not a key\n")
    ident.unlink()
    with pytest.raises(ConfigErrors) as e:
        load_config(path, env={}, service=True)
    by_key = {err.key: str(err) for err in e.value.errors}
    assert "not a PEM private key" in by_key["encryption.signing_key_file"]
    assert "no such file" in by_key["encryption.identity_file"]


def test_service_start_needs_a_recipient(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, f'state_dir = "{tmp_path / "state"}"\n'), env={}, service=True)
    assert e.value.key == "encryption.recipients" and "callrec keys generate" in str(e.value)


def test_run_refuses_to_start_and_lists_every_problem(tmp_path: Path) -> None:
    """`age1notakey` used to pass and the service started; only /health said 503."""
    ident, signing, recipient = _keys(tmp_path / "keys", signing_mode=0o644)
    path = _service_config(tmp_path, ident, signing, [recipient, "age1notakey"])
    state = tmp_path / "state"
    r = subprocess.run(
        [sys.executable, "-m", "controller.cli", "--config", str(path), "run"],
        env={"CALLREC_API_PORT": "http", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert "config: 3 problems:" in r.stderr
    assert "encryption.recipients[1] = 'age1notakey' is invalid" in r.stderr
    assert "encryption.signing_key_file" in r.stderr and "mode 0644" in r.stderr
    assert "api.port = 'http' is invalid" in r.stderr
    assert not state.exists()
    assert stat.S_IMODE(signing.stat().st_mode) == 0o644  # reported, never changed behind the admin's back


def test_service_start_checks_an_accounts_own_signing_key(tmp_path: Path) -> None:
    ident, signing, recipient = _keys(tmp_path / "keys")
    _, acme_signing, acme_recipient = _keys(tmp_path / "acme", signing_mode=0o644)
    path = _service_config(tmp_path, ident, signing, [recipient])
    path.write_text(
        path.read_text()
        + f'[accounts.acme.encryption]\nrecipients = ["{acme_recipient}"]\nsigning_key_file = "{acme_signing}"\n'
    )
    with pytest.raises(ConfigError) as e:
        load_config(path, env={}, service=True)
    assert e.value.key == "accounts.acme.encryption.signing_key_file" and "mode 0644" in str(e.value)


def test_a_misspelled_secret_variable_is_named_but_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, env={"CALLREC_PBX_FIRST_PASSWORD": "hunter2"})
    assert e.value.key == "CALLREC_PBX_FIRST_PASSWORD" and "hunter2" not in str(e.value)


def test_public_url_and_link_lifetime(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[api]\npublic_url = 'https://rec.example.com/callrec/'\n"), env={})
    assert cfg.api.public_url == "https://rec.example.com/callrec/"
    assert cfg.webhooks.download_link_minutes == 15  # short by default
    assert load_config(write(tmp_path, ""), env={}).api.public_url == ""  # unset: no links are handed out
