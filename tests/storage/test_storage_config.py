"""Storage keys of callrec.toml: every backend's settings are checked before the service starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import ConfigError, load_config
from storage.backends.base import open_backend
from storage.backends.webdav import WebDAVBackend


def write(tmp: Path, text: str) -> Path:
    p = tmp / "callrec.toml"
    p.write_text(text)
    return p


def test_webdav_storage_is_configured_from_the_file(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            '[storage]\nbackend = "webdav"\nurl = "https://dav.example.com/remote.php/dav/files/rec"\n'
            'username = "callrec"\npassword = "s3cret"\nverify_tls = false\nbase_path = "/recordings/site-a/"\n',
        ),
        env={"CALLREC_STORAGE_PASSWORD": "from-env"},
    )
    assert cfg.storage.backend == "webdav" and cfg.storage.password == "from-env" and not cfg.storage.verify_tls
    assert cfg.redacted()["storage"]["password"] == "***"
    b = open_backend(cfg.storage, cfg.storage_path)
    assert isinstance(b, WebDAVBackend)
    assert b.uri("2026/01/02/x.wav.age") == (
        "https://dav.example.com/remote.php/dav/files/rec/recordings/site-a/2026/01/02/x.wav.age"
    )


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ('[storage]\nbackend = "webdav"\n', "storage.url", "http:// or https://"),
        ('[storage]\nbackend = "webdav"\nurl = "ftp://x/"\n', "storage.url", "http:// or https://"),
        ('[storage]\nbackend = "webdav"\nurl = "https://u:p@x/"\n', "storage.url", "without credentials"),
        ('[storage]\nbackend = "webdav"\nurl = "https://x/"\nverify_tls = "maybe"\n', "storage.verify_tls", "true or"),
    ],
)
def test_bad_webdav_settings_are_refused_naming_the_key(tmp_path: Path, text: str, key: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text), env={})
    assert e.value.key == key and allowed in str(e.value)
    assert "u:p" not in str(e.value)
