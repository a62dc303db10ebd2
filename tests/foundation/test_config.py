import subprocess
import sys
from pathlib import Path

import pytest

from controller.config import ConfigError, load_config


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
        ("", {"CALLREC_DATABASE_URL": "mysql://x"}, "database.url", "postgresql://"),
        ("", {"CALLREC_API_BIND": "not-an-ip"}, "api.bind", "IP address"),
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
