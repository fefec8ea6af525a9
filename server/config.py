"""Settings read from the environment, validated once at start-up.

The server refuses to start with a one-line reason when a setting is unknown
or unsafe, so an operator learns about a typo before the first inspector syncs.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

DEV_SECRET = "dev-only-insecure-secret-change-me"
ENV_PREFIX = "INSPECT_ONCE_"

# Environment variables read by this module. Anything else starting with
# INSPECT_ONCE_ is treated as a typo and refused.
KNOWN_PREFIXED = {
    "INSPECT_ONCE_WORKERS",
    "INSPECT_ONCE_THREADS",
    "INSPECT_ONCE_HOST",
    "INSPECT_ONCE_PORT",
    "INSPECT_ONCE_DEBUG",
    "INSPECT_ONCE_ACCESS_TOKEN_SECONDS",
    "INSPECT_ONCE_REFRESH_TOKEN_DAYS",
    "INSPECT_ONCE_DEVICE_TOKEN_SECONDS",
    "INSPECT_ONCE_MAX_CONTENT_LENGTH",
    "INSPECT_ONCE_LOGIN_RATE_LIMIT",
    "INSPECT_ONCE_LOGIN_ADDRESS_RATE_LIMIT",
    "INSPECT_ONCE_RATELIMIT_STORAGE_URI",
    "INSPECT_ONCE_VAR",
    "INSPECT_ONCE_SYNC_MAX_SKEW_SECONDS",
    "INSPECT_ONCE_MAX_UPLOAD_BYTES",
    "INSPECT_ONCE_UPLOAD_EXPIRY_HOURS",
    "INSPECT_ONCE_REVIEW_IDLE_MINUTES",
    "INSPECT_ONCE_VERIFICATION_LEASE_SECONDS",
    "INSPECT_ONCE_MEDIA_MIN_FREE_BYTES",
    "INSPECT_ONCE_FIELD_APP_DIR",
    "INSPECT_ONCE_PUBLIC_URL",
    "INSPECT_ONCE_LATE_REGISTRATION_DAYS",
    "INSPECT_ONCE_CLOCK_OFFSET_LIMIT_SECONDS",
    "INSPECT_ONCE_EVALUATION_DAYS",
    "INSPECT_ONCE_EVALUATION_CORRECTION_DAYS",
    "INSPECT_ONCE_EVALUATION_PROOF_RATE_LIMIT",
    "INSPECT_ONCE_EVALUATION_PROOF_ADDRESS_RATE_LIMIT",
    "INSPECT_ONCE_EVALUATION_SUBMIT_RATE_LIMIT",
    "INSPECT_ONCE_TRUSTED_PROXIES",
    "INSPECT_ONCE_KEYS",
}


class ConfigError(click.ClickException, RuntimeError):
    """A setting is missing, malformed or unsafe; the message is one line.

    A ClickException, so ``flask --app server …`` prints ``Error: <reason>``
    and exits 1 instead of a traceback.
    """


@dataclass(frozen=True)
class Settings:
    database_url: str
    var_dir: Path
    redis_url: str | None
    media_root: Path
    secret_key: str
    jwt_signing_key: str
    host: str
    port: int
    workers: int
    threads: int
    debug: bool
    access_token_seconds: int
    refresh_token_days: int
    device_token_seconds: int
    max_content_length: int
    login_rate_limit: str
    login_address_rate_limit: str
    sync_max_skew_seconds: int
    ratelimit_storage_uri: str
    max_upload_bytes: int
    upload_expiry_hours: int
    review_idle_minutes: int = 30  # the review app logs a browser off after this long without a request
    # A verification run not finished this long after it started is taken to have died with its worker.
    verification_lease_seconds: int = 1800
    # Below this much free space in the media store, /healthz reports "degraded" (uploads still run).
    media_min_free_bytes: int = 5 * 1024 ** 3
    # The tablet app's built files (make web), served at /field/.
    field_app_dir: Path = Path(__file__).resolve().parents[1] / "field_client" / "web" / "dist"
    # Where the public reaches this server (https://…): the base of inspection-code URLs. Unset: the
    # address each request came to.
    public_url: str | None = None
    # A task registered after its visit began (late registration, with a reason) is accepted only if its
    # window started at most this many days ago.
    late_registration_days: int = 3
    # A device whose clock was further than this from the server's at a sync around a capture (the clock
    # ledger, server/clocks) has that evidence flagged clock-offset.
    clock_offset_limit_seconds: int = 300
    # The enterprise's evaluation of a visit (server/evaluations): open from the window's start until this
    # many days after its end; a rating can be corrected this many days after it was first given.
    evaluation_days: int = 30
    evaluation_correction_days: int = 7
    # Wrong credit codes allowed per inspection code and per client address; submissions per client address.
    evaluation_proof_rate_limit: str = "5 per hour"
    evaluation_proof_address_rate_limit: str = "20 per hour"
    evaluation_submit_rate_limit: str = "10 per hour"
    # Evidence in an S3-compatible object store (s3://BUCKET/PREFIX) instead of under media_root; the endpoint,
    # region and credentials come from the standard AWS_* variables (docs/deploy.md).
    # The signing keys (server.keyfiles): "generate" on first use, or "provided" (made once with make-keys and
    # copied to every machine of a several-machine installation, which must all sign alike).
    keys: str = "generate"
    media_store_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    # How many reverse proxies (nginx) stand in front of the app and set X-Forwarded-For/-Proto/-Host. 0: the
    # headers are ignored (anyone could send them); behind one nginx, 1, so the client's address (per-address
    # rate limits, the audit log) and scheme are the ones nginx saw, not nginx's own (deploy/nginx).
    trusted_proxies: int = 0


def parse_store_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/PREFIX`` → (bucket, prefix without slashes); ValueError when it is not one."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError("MEDIA_STORE_URL must look like s3://BUCKET/PREFIX")
    if parts.query or parts.fragment:
        raise ValueError("MEDIA_STORE_URL takes no query or fragment")
    bucket = parts.netloc
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
        raise ValueError(f"{bucket!r} is not a valid S3 bucket name")
    prefix = parts.path.strip("/")
    if any(segment in ("", ".", "..") for segment in prefix.split("/")) and prefix:
        raise ValueError("the prefix of MEDIA_STORE_URL has an empty, '.' or '..' segment")
    return bucket, prefix


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (the first is the default)."""
    value = env.get(name) or choices[0]
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _rate(value: str, name: str) -> str:
    from limits import parse

    try:
        parse(value)
    except ValueError:
        raise ConfigError(f"{name} must look like '5 per minute', got {value!r}") from None
    return value


def _public_url(raw: str | None) -> str | None:
    if not raw:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"INSPECT_ONCE_PUBLIC_URL must be an http(s):// address with no query, got {raw!r}")
    return raw.rstrip("/")


def _kept_secrets(path: Path) -> dict[str, str]:
    """``SECRET_KEY``/``JWT_SIGNING_KEY`` from the installation's ``var/secrets.env`` (made by ``make run``),
    so operator commands (``flask --app server …``) work without sourcing it; the environment wins."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    found: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name in ("SECRET_KEY", "JWT_SIGNING_KEY"):
            found[name] = value.strip().strip("'\"")
    return found


def load_settings(env: Mapping[str, str] | None = None, *, testing: bool = False) -> Settings:
    """Build settings from ``env`` (default ``os.environ``), refusing unsafe ones."""
    env = os.environ if env is None else env
    unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in KNOWN_PREFIXED)
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]}; known: {', '.join(sorted(KNOWN_PREFIXED))}")

    debug = _bool(env, "INSPECT_ONCE_DEBUG")
    root = Path(env.get("INSPECT_ONCE_VAR", "var")).resolve()
    database_url = env.get("DATABASE_URL") or f"sqlite:///{root / 'inspect-once.db'}"
    if not database_url.startswith(("sqlite:", "postgresql")):
        raise ConfigError("DATABASE_URL must be a sqlite:/// or postgresql+psycopg:// URL")
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]

    redis_url = env.get("REDIS_URL") or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL must be a redis://, rediss:// or unix:// URL")

    media_store_url = env.get("MEDIA_STORE_URL") or None
    if media_store_url:
        try:
            parse_store_url(media_store_url)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    s3_endpoint_url = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    if s3_endpoint_url and not s3_endpoint_url.startswith(("http://", "https://")):
        raise ConfigError("AWS_ENDPOINT_URL must be an http:// or https:// URL")

    kept = _kept_secrets(root / "secrets.env")
    secret_key = env.get("SECRET_KEY") or kept.get("SECRET_KEY", "")
    jwt_key = env.get("JWT_SIGNING_KEY") or kept.get("JWT_SIGNING_KEY", "")
    relaxed = debug or testing
    for name, value in (("SECRET_KEY", secret_key), ("JWT_SIGNING_KEY", jwt_key)):
        if not value or value == DEV_SECRET:
            if not relaxed:
                raise ConfigError(f"{name} is not set; set a random value of at least 32 characters "
                                  "(or INSPECT_ONCE_DEBUG=1 for development)")
        elif len(value) < 32 and not relaxed:
            raise ConfigError(f"{name} is too short; use at least 32 random characters")
    secret_key = secret_key or DEV_SECRET
    jwt_key = jwt_key or DEV_SECRET + "-jwt"
    if secret_key == jwt_key and not relaxed:
        raise ConfigError("JWT_SIGNING_KEY must differ from SECRET_KEY")

    for name, default in (("INSPECT_ONCE_LOGIN_RATE_LIMIT", "5 per minute"),
                          ("INSPECT_ONCE_LOGIN_ADDRESS_RATE_LIMIT", "30 per minute"),
                          ("INSPECT_ONCE_EVALUATION_PROOF_RATE_LIMIT", "5 per hour"),
                          ("INSPECT_ONCE_EVALUATION_PROOF_ADDRESS_RATE_LIMIT", "20 per hour"),
                          ("INSPECT_ONCE_EVALUATION_SUBMIT_RATE_LIMIT", "10 per hour")):
        _rate(env.get(name, default), name)

    return Settings(
        database_url=database_url,
        var_dir=root,
        redis_url=redis_url,
        media_root=Path(env.get("MEDIA_ROOT") or root / "media").resolve(),
        media_store_url=media_store_url,
        keys=_choice(env, "INSPECT_ONCE_KEYS", ("generate", "provided")),
        s3_endpoint_url=s3_endpoint_url,
        s3_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        secret_key=secret_key,
        jwt_signing_key=jwt_key,
        host=env.get("INSPECT_ONCE_HOST", "127.0.0.1"),
        port=_int(env, "INSPECT_ONCE_PORT", 5000),
        workers=_int(env, "INSPECT_ONCE_WORKERS", min(4, os.cpu_count() or 1)),
        threads=_int(env, "INSPECT_ONCE_THREADS", 8),
        debug=debug,
        access_token_seconds=_int(env, "INSPECT_ONCE_ACCESS_TOKEN_SECONDS", 900, minimum=30),
        refresh_token_days=_int(env, "INSPECT_ONCE_REFRESH_TOKEN_DAYS", 30),
        device_token_seconds=_int(env, "INSPECT_ONCE_DEVICE_TOKEN_SECONDS", 3600, minimum=30),
        sync_max_skew_seconds=_int(env, "INSPECT_ONCE_SYNC_MAX_SKEW_SECONDS", 300, minimum=0),
        max_content_length=_int(env, "INSPECT_ONCE_MAX_CONTENT_LENGTH", 4 * 1024 * 1024, minimum=1024),
        login_rate_limit=env.get("INSPECT_ONCE_LOGIN_RATE_LIMIT", "5 per minute"),
        login_address_rate_limit=env.get("INSPECT_ONCE_LOGIN_ADDRESS_RATE_LIMIT", "30 per minute"),
        ratelimit_storage_uri=env.get("INSPECT_ONCE_RATELIMIT_STORAGE_URI", "memory://"),
        max_upload_bytes=_int(env, "INSPECT_ONCE_MAX_UPLOAD_BYTES", 20 * 1024 ** 3, minimum=1),
        upload_expiry_hours=_int(env, "INSPECT_ONCE_UPLOAD_EXPIRY_HOURS", 72, minimum=1),
        review_idle_minutes=_int(env, "INSPECT_ONCE_REVIEW_IDLE_MINUTES", 30, minimum=1),
        verification_lease_seconds=_int(env, "INSPECT_ONCE_VERIFICATION_LEASE_SECONDS", 1800, minimum=1),
        media_min_free_bytes=_int(env, "INSPECT_ONCE_MEDIA_MIN_FREE_BYTES", 5 * 1024 ** 3, minimum=0),
        public_url=_public_url(env.get("INSPECT_ONCE_PUBLIC_URL")),
        trusted_proxies=_int(env, "INSPECT_ONCE_TRUSTED_PROXIES", 0, minimum=0),
        late_registration_days=_int(env, "INSPECT_ONCE_LATE_REGISTRATION_DAYS", 3, minimum=0),
        clock_offset_limit_seconds=_int(env, "INSPECT_ONCE_CLOCK_OFFSET_LIMIT_SECONDS", 300, minimum=1),
        evaluation_days=_int(env, "INSPECT_ONCE_EVALUATION_DAYS", 30, minimum=0),
        evaluation_correction_days=_int(env, "INSPECT_ONCE_EVALUATION_CORRECTION_DAYS", 7, minimum=0),
        evaluation_proof_rate_limit=env.get("INSPECT_ONCE_EVALUATION_PROOF_RATE_LIMIT", "5 per hour"),
        evaluation_proof_address_rate_limit=env.get("INSPECT_ONCE_EVALUATION_PROOF_ADDRESS_RATE_LIMIT",
                                                    "20 per hour"),
        evaluation_submit_rate_limit=env.get("INSPECT_ONCE_EVALUATION_SUBMIT_RATE_LIMIT", "10 per hour"),
        **({"field_app_dir": Path(env["INSPECT_ONCE_FIELD_APP_DIR"]).resolve()}
           if env.get("INSPECT_ONCE_FIELD_APP_DIR") else {}),
    )


def flask_config(settings: Settings) -> dict[str, Any]:
    """Translate settings into the Flask/extension configuration keys."""
    return {
        "SETTINGS": settings,
        "SECRET_KEY": settings.secret_key,
        "DEBUG": settings.debug,
        "SQLALCHEMY_DATABASE_URI": settings.database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "MAX_CONTENT_LENGTH": settings.max_content_length,
        # Upload bodies are made durable in checkpoints as they stream in (docs/uploads.md).
        "UPLOAD_CHECKPOINT_BYTES": 8 * 1024 * 1024,
        "UPLOAD_CHECKPOINT_SECONDS": 5.0,
        # A body that stops arriving for this long is cut off (what arrived is kept).
        "UPLOAD_BODY_IDLE_SECONDS": 60.0,
        "API_TITLE": "Inspect Once",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        # Served from the installed swagger-ui-bundle: offices often have no internet.
        "OPENAPI_SWAGGER_UI_URL": "/api/v1/docs/assets/",
        "OPENAPI_REDOC_PATH": None,
        "JSON_SORT_KEYS": False,
        "REVIEW_IDLE_MINUTES": settings.review_idle_minutes,
    }
