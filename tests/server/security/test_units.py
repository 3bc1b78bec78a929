"""Pure parts: tokens, the login rate rule, password rules and hashing, weak secrets."""

from __future__ import annotations

import datetime as dt

import pytest
from argon2 import PasswordHasher

from server.security import passwords
from server.security.ratelimit import retry_after
from server.security.tokens import TokenExpired, TokenInvalid, issue_token, read_token
from server.settings import InsecureSettingsError, ServerSettings

NOW = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc)
SECRET = "a-test-secret-long-enough"


def _token(**kw):
    args = dict(user_id=7, username="awa", role="artisan", artisan_id=3, site="DKR", version=2,
                now_s=1_000_000, ttl_s=900)
    args.update(kw)
    return issue_token(SECRET, **args)


def test_token_round_trip_and_expiry():
    token, exp = _token()
    assert exp == 1_000_900
    c = read_token(SECRET, token, now_s=1_000_899)
    assert (c.user_id, c.username, c.role, c.artisan_id, c.site, c.version) == (7, "awa", "artisan", 3, "DKR", 2)
    with pytest.raises(TokenExpired):
        read_token(SECRET, token, now_s=1_000_900)
    with pytest.raises(TokenExpired):
        read_token(SECRET, token)  # real clock: long expired
    with pytest.raises(TokenInvalid):
        read_token("another-secret-value", token, now_s=1_000_000)
    with pytest.raises(TokenInvalid):
        read_token(SECRET, token[:-3] + "abc", now_s=1_000_000)


def test_none_algorithm_is_refused():
    import jwt

    forged = jwt.encode({"sub": "1", "iss": "crp-server", "iat": 1, "exp": 2**40, "name": "x", "role": "manager",
                         "ver": 1}, key=None, algorithm="none")
    with pytest.raises(TokenInvalid):
        read_token(SECRET, forged)


def test_retry_after():
    f = [NOW - dt.timedelta(seconds=s) for s in (10, 20, 30, 40)]
    assert retry_after(f, NOW, max_failures=5, window_s=300) is None
    f.append(NOW - dt.timedelta(seconds=100))
    # five failures: allowed again when the oldest (100 s ago) leaves the window
    assert retry_after(f, NOW, max_failures=5, window_s=300) == 200
    old = [NOW - dt.timedelta(seconds=400)] * 10
    assert retry_after(old, NOW, max_failures=5, window_s=300) is None


def test_passwords():
    assert passwords.password_problem("short") is not None
    assert passwords.password_problem(" padded-password ") is not None
    assert passwords.password_problem("a-good-long-password") is None
    h = passwords.hash_password("a-good-long-password")
    assert h.startswith("$argon2id$")
    assert passwords.verify_password(h, "a-good-long-password")
    assert not passwords.verify_password(h, "another-password")
    assert not passwords.verify_password(None, "anything-at-all")
    assert not passwords.verify_password("not-a-hash", "anything-at-all")


def test_default_hasher_is_argon2id_with_library_defaults():
    previous = passwords.use_hasher(PasswordHasher())
    try:
        h = passwords.hash_password("a-good-long-password")
        assert h.startswith("$argon2id$") and "m=65536,t=3,p=4" in h
    finally:
        passwords.use_hasher(previous)


@pytest.mark.parametrize("secret", ["short-secret", "unsafe-placeholder-abcdefghijkl", "change-me-please-now-1234",
                                    "demo-secret-change-me"])
def test_weak_secret_key_refused_outside_demo(secret):
    s = ServerSettings(secret_key=secret, admin_token="a-real-admin-token-123", _env_file=None)
    with pytest.raises(InsecureSettingsError, match="CRP_SECRET_KEY"):
        s.check_secrets("en")
    ServerSettings(secret_key=secret, admin_token="x", demo_mode=True, _env_file=None).check_secrets()


def test_strong_secrets_accepted():
    ServerSettings(secret_key="0123456789abcdef", admin_token="fedcba9876543210", _env_file=None).check_secrets()
    with pytest.raises(InsecureSettingsError, match="CRP_ADMIN_TOKEN"):
        ServerSettings(secret_key="0123456789abcdef", admin_token="fedcba987654321", _env_file=None).check_secrets()
