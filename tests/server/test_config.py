"""Start-up settings: an unsafe or mistyped setting stops the server with a one-line reason."""
from __future__ import annotations

from pathlib import Path

import pytest

from server import create_app
from server.config import DEV_SECRET, ConfigError, load_settings

SECRET = "s" * 20 + "ecret-key-0123456789"            # 40 characters
JWT_KEY = "j" * 20 + "wt-signing-key-0123456789"      # 45 characters


def good_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {"SECRET_KEY": SECRET, "JWT_SIGNING_KEY": JWT_KEY, "INSPECT_ONCE_VAR": str(tmp_path / "var")}
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def refuses(env: dict[str, str], *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env, testing=False)
    message = str(info.value)
    assert "\n" not in message and message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_good_settings_are_accepted(tmp_path: Path) -> None:
    settings = load_settings(env=good_env(tmp_path, INSPECT_ONCE_HOST="0.0.0.0", INSPECT_ONCE_PORT="8080",
                                          INSPECT_ONCE_LOGIN_RATE_LIMIT="10 per minute",
                                          MEDIA_ROOT=str(tmp_path / "media-store")), testing=False)
    assert settings.secret_key == SECRET and settings.jwt_signing_key == JWT_KEY
    assert (settings.host, settings.port, settings.debug) == ("0.0.0.0", 8080, False)
    assert settings.login_rate_limit == "10 per minute"
    assert settings.media_root == (tmp_path / "media-store").resolve()


def test_defaults_put_everything_under_var(tmp_path: Path) -> None:
    settings = load_settings(env=good_env(tmp_path), testing=False)
    var = (tmp_path / "var").resolve()
    assert settings.database_url == f"sqlite:///{var / 'inspect-once.db'}"
    assert settings.media_root == var / "media"
    assert (settings.host, settings.port) == ("127.0.0.1", 5000)


def test_late_registration_is_allowed_three_days_unless_configured(tmp_path: Path) -> None:
    assert load_settings(env=good_env(tmp_path), testing=False).late_registration_days == 3
    for value in ("0", "7"):
        env = good_env(tmp_path, INSPECT_ONCE_LATE_REGISTRATION_DAYS=value)
        assert load_settings(env=env, testing=False).late_registration_days == int(value)


@pytest.mark.parametrize("missing", ["SECRET_KEY", "JWT_SIGNING_KEY"])
def test_refuses_to_start_without_a_secret(tmp_path: Path, missing: str) -> None:
    env = good_env(tmp_path)
    del env[missing]
    refuses(env, missing, "not set")
    refuses({**env, missing: ""}, missing, "not set")


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SIGNING_KEY"])
def test_refuses_the_development_default_secret(tmp_path: Path, name: str) -> None:
    refuses(good_env(tmp_path, **{name: DEV_SECRET}), name)


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SIGNING_KEY"])
def test_refuses_a_short_secret(tmp_path: Path, name: str) -> None:
    refuses(good_env(tmp_path, **{name: "x" * 31}), name, "too short")
    load_settings(env=good_env(tmp_path, **{name: "x" * 32}), testing=False)  # 32 is enough


def test_refuses_equal_keys(tmp_path: Path) -> None:
    refuses(good_env(tmp_path, JWT_SIGNING_KEY=SECRET), "JWT_SIGNING_KEY", "SECRET_KEY")


@pytest.mark.parametrize("typo", ["INSPECT_ONCE_PROT", "INSPECT_ONCE_HOSTNAME", "INSPECT_ONCE_debug"])
def test_refuses_an_unknown_prefixed_setting(tmp_path: Path, typo: str) -> None:
    message = refuses(good_env(tmp_path, **{typo: "1"}), typo, "unknown setting")
    assert "INSPECT_ONCE_PORT" in message  # the reason lists what is known


def test_unrelated_environment_variables_are_ignored(tmp_path: Path) -> None:
    load_settings(env=good_env(tmp_path, PATH="/usr/bin", INSPECTONCE_X="1", FLASK_APP="server"), testing=False)


@pytest.mark.parametrize("name, value", [
    ("INSPECT_ONCE_PORT", "http"), ("INSPECT_ONCE_PORT", "80.5"), ("INSPECT_ONCE_PORT", "0"),
    ("INSPECT_ONCE_ACCESS_TOKEN_SECONDS", "fifteen minutes"),
    ("INSPECT_ONCE_LATE_REGISTRATION_DAYS", "-1"), ("INSPECT_ONCE_LATE_REGISTRATION_DAYS", "three"),
])
def test_refuses_a_bad_integer(tmp_path: Path, name: str, value: str) -> None:
    refuses(good_env(tmp_path, **{name: value}), name, value)


@pytest.mark.parametrize("name", ["INSPECT_ONCE_LOGIN_RATE_LIMIT", "INSPECT_ONCE_LOGIN_ADDRESS_RATE_LIMIT"])
@pytest.mark.parametrize("value", ["banana", "5 per fortnight", "five per minute"])
def test_refuses_a_bad_rate_limit(tmp_path: Path, name: str, value: str) -> None:
    refuses(good_env(tmp_path, **{name: value}), name, value)


@pytest.mark.parametrize("url", ["mysql://root@localhost/inspect", "oracle://x", "inspect-once.db", "/var/db.sqlite"])
def test_refuses_a_database_that_is_not_sqlite_or_postgresql(tmp_path: Path, url: str) -> None:
    refuses(good_env(tmp_path, DATABASE_URL=url), "DATABASE_URL")


def test_a_plain_postgresql_url_is_normalised_to_psycopg(tmp_path: Path) -> None:
    settings = load_settings(env=good_env(tmp_path, DATABASE_URL="postgresql://inspect:pw@db:5432/inspect"),
                             testing=False)
    assert settings.database_url == "postgresql+psycopg://inspect:pw@db:5432/inspect"
    explicit = "postgresql+psycopg://inspect@db/inspect"
    assert load_settings(env=good_env(tmp_path, DATABASE_URL=explicit), testing=False).database_url == explicit


def test_debug_relaxes_the_secrets(tmp_path: Path) -> None:
    env = {"INSPECT_ONCE_DEBUG": "1", "INSPECT_ONCE_VAR": str(tmp_path)}
    settings = load_settings(env=env, testing=False)
    assert settings.debug is True
    assert settings.secret_key and settings.jwt_signing_key and settings.secret_key != settings.jwt_signing_key
    load_settings(env={**env, "SECRET_KEY": "short", "JWT_SIGNING_KEY": "short"}, testing=False)
    load_settings(env={**env, "SECRET_KEY": DEV_SECRET}, testing=False)


def test_debug_does_not_relax_typos_or_malformed_values(tmp_path: Path) -> None:
    env = {"INSPECT_ONCE_DEBUG": "1", "INSPECT_ONCE_VAR": str(tmp_path)}
    refuses({**env, "INSPECT_ONCE_PROT": "5001"}, "INSPECT_ONCE_PROT")
    refuses({**env, "INSPECT_ONCE_PORT": "abc"}, "INSPECT_ONCE_PORT")
    refuses({**env, "DATABASE_URL": "mysql://x"}, "DATABASE_URL")


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_refuses_a_debug_flag_that_is_not_a_boolean(tmp_path: Path, value: str) -> None:
    refuses({"INSPECT_ONCE_DEBUG": value, "INSPECT_ONCE_VAR": str(tmp_path)}, "INSPECT_ONCE_DEBUG")


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_debug_off_keeps_the_secrets_strict(tmp_path: Path, value: str) -> None:
    refuses({"INSPECT_ONCE_DEBUG": value, "INSPECT_ONCE_VAR": str(tmp_path)}, "SECRET_KEY")


# ---- the app factory applies the same rules -----------------------------------

@pytest.mark.parametrize("overrides", [
    {"SECRET_KEY": None},
    {"SECRET_KEY": DEV_SECRET},
    {"JWT_SIGNING_KEY": "short"},
    {"JWT_SIGNING_KEY": SECRET},
    {"INSPECT_ONCE_PROT": "5001"},
    {"INSPECT_ONCE_PORT": "five thousand"},
    {"DATABASE_URL": "mysql://root@localhost/inspect"},
], ids=["no-secret", "dev-secret", "short-jwt-key", "equal-keys", "typo", "bad-port", "mysql"])
def test_create_app_refuses_unsafe_settings(tmp_path: Path, overrides: dict[str, str | None]) -> None:
    env = good_env(tmp_path)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    with pytest.raises(ConfigError):
        create_app(env=env)
    assert not (tmp_path / "var").exists()  # refused before touching the disk


def test_create_app_accepts_good_settings(tmp_path: Path) -> None:
    app = create_app(env=good_env(tmp_path, DATABASE_URL="postgresql://inspect@db:5432/inspect"))
    assert app.config["SECRET_KEY"] == SECRET and app.config["DEBUG"] is False
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://inspect@db:5432/inspect"
    assert app.config["SETTINGS"].jwt_signing_key == JWT_KEY


# ---- an operator at the command line sees one line, not a traceback ----------

@pytest.mark.parametrize("overrides, reason", [
    ({"SECRET_KEY": None}, "SECRET_KEY is not set"),
    ({"INSPECT_ONCE_PROT": "5001"}, "unknown setting INSPECT_ONCE_PROT"),
], ids=["no-secret", "typo"])
def test_the_flask_cli_refuses_with_a_one_line_reason(tmp_path: Path, overrides: dict[str, str | None],
                                                      reason: str) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("INSPECT_ONCE_") and k not in ("SECRET_KEY", "JWT_SIGNING_KEY", "DATABASE_URL")}
    env.update(good_env(tmp_path))
    for key, value in overrides.items():
        env.pop(key, None)
        if value is not None:
            env[key] = value
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "server", "init-db"], env=env,
                            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and reason in lines[0], result.stderr
    assert not (tmp_path / "var").exists()


def test_the_installations_secrets_file_is_read_when_the_environment_has_none(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from server.config import load_settings

    var = tmp_path / "var"
    var.mkdir()
    (var / "secrets.env").write_text("SECRET_KEY=" + "s" * 48 + "\nJWT_SIGNING_KEY='" + "j" * 48 + "'\n")
    settings = load_settings({"INSPECT_ONCE_VAR": str(var)})
    assert settings.secret_key == "s" * 48 and settings.jwt_signing_key == "j" * 48
    # The environment wins over the file.
    settings = load_settings({"INSPECT_ONCE_VAR": str(var), "SECRET_KEY": "e" * 40})
    assert settings.secret_key == "e" * 40 and settings.jwt_signing_key == "j" * 48


@pytest.mark.parametrize(("proxies", "seen"), [
    (None, ("127.0.0.1", "http", "localhost")),  # the headers are anyone's: ignored
    ("1", ("203.0.113.7", "https", "inspect.example.org")),  # nginx's own (rightmost) values are taken
])
def test_forwarded_headers_are_trusted_only_from_configured_proxies(tmp_path: Path, proxies: str | None,
                                                                    seen: tuple[str, str, str]) -> None:
    app = create_app(env=good_env(tmp_path, INSPECT_ONCE_TRUSTED_PROXIES=proxies))  # type: ignore[arg-type]
    answered: list[tuple[str, str, str]] = []

    @app.get("/whoami")
    def whoami() -> str:
        from flask import request
        answered.append((request.remote_addr or "", request.scheme, request.host))
        return ""

    app.test_client().get("/whoami", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7",
                                              "X-Forwarded-Proto": "https", "X-Forwarded-Host": "inspect.example.org"})
    assert answered == [seen]


def test_refuses_a_negative_count_of_trusted_proxies(tmp_path: Path) -> None:
    refuses(good_env(tmp_path, INSPECT_ONCE_TRUSTED_PROXIES="-1"), "INSPECT_ONCE_TRUSTED_PROXIES")


def test_an_object_store_is_chosen_by_url_with_the_standard_aws_variables(tmp_path: Path) -> None:
    settings = load_settings(env=good_env(tmp_path, MEDIA_STORE_URL="s3://evidence/county-a",
                                          AWS_ENDPOINT_URL="https://minio.office.example:9000",
                                          AWS_REGION="cn-central-1"), testing=False)
    assert (settings.media_store_url, settings.s3_endpoint_url, settings.s3_region) == (
        "s3://evidence/county-a", "https://minio.office.example:9000", "cn-central-1")
    assert load_settings(env=good_env(tmp_path), testing=False).media_store_url is None  # local disk


@pytest.mark.parametrize(("name", "value", "fragment"), [
    ("MEDIA_STORE_URL", "/srv/media", "s3://BUCKET/PREFIX"),
    ("MEDIA_STORE_URL", "s3://Bad_Bucket/x", "bucket name"),
    ("MEDIA_STORE_URL", "s3://evidence/../x", "prefix"),
    ("AWS_ENDPOINT_URL", "minio:9000", "AWS_ENDPOINT_URL"),
])
def test_refuses_a_malformed_object_store(tmp_path: Path, name: str, value: str, fragment: str) -> None:
    env = good_env(tmp_path, MEDIA_STORE_URL="s3://evidence/x")
    env[name] = value
    refuses(env, fragment)
