"""Login (OAuth2 password flow), tokens, rate limit, deactivation and password reset."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from server.security import ratelimit
from server.security.models import LoginAttempt, User
from server.security.tokens import issue_token

from .conftest import PASSWORD


def test_login_gives_a_short_lived_bearer_token(sec):
    r = sec.login("tech")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    me = sec.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["role"] == "technician" and me.json()["name"] == "tech"


def test_artisan_me_names_their_artisan(sec):
    me = sec.client.get("/api/v1/auth/me", headers=sec.headers["awa"]).json()
    assert me == {"name": "awa", "kind": "user", "role": "artisan", "artisan_id": sec.own, "site": "DKR"}


def test_admin_token_is_a_manager(sec):
    me = sec.client.get("/api/v1/auth/me", headers=sec.admin).json()
    assert me["role"] == "manager" and me["kind"] == "admin-token"


def test_wrong_password_is_401_and_counted(sec, db_session):
    r = sec.login("tech", "not-the-password", headers={"Accept-Language": "en"})
    assert r.status_code == 401
    assert r.json()["detail"] == "Wrong username or password"
    user = db_session.scalar(select(User).where(User.username == "tech"))
    assert user.failed_logins == 1
    fails = db_session.scalar(select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.username == "tech", LoginAttempt.ok.is_(False)))
    assert fails == 1
    assert sec.login("tech").status_code == 200  # still under the limit
    db_session.expire_all()
    assert db_session.get(User, user.id).failed_logins == 0


def test_unknown_user_is_401_like_a_wrong_password(sec):
    r = sec.login("nobody-here", "whatever-password")
    assert r.status_code == 401 and r.json()["code"] == "security.error.bad_credentials"


def test_rate_limit_per_username_answers_429_with_retry_after(sec):
    for _ in range(ratelimit.LOGIN_MAX_FAILURES):
        assert sec.login("mgr", "wrong-password-x").status_code == 401
    r = sec.login("mgr")  # even the right password waits
    assert r.status_code == 429
    retry = int(r.headers["Retry-After"])
    assert 0 < retry <= ratelimit.LOGIN_WINDOW_S
    assert r.json()["code"] == "security.error.too_many_attempts"


def test_rate_limit_per_address(sec):
    names = [f"ghost{i}" for i in range(ratelimit.LOGIN_MAX_FAILURES)]
    for n in names:
        assert sec.login(n, "wrong-password-x").status_code == 401
    assert sec.login("tech").status_code == 429  # another user, same address


def test_expired_token_is_401(sec, server_settings):
    token, _ = issue_token(server_settings.secret_key, user_id=sec.users["mgr"], username="mgr", role="manager",
                           artisan_id=None, site=None, version=1, now_s=int(time.time()) - 2000, ttl_s=900)
    r = sec.client.get("/api/v1/sites", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["code"] == "security.error.token_expired"


def test_forged_token_is_401(sec, server_settings):
    token, _ = issue_token("another-secret-entirely", user_id=sec.users["mgr"], username="mgr", role="manager",
                           artisan_id=None, site=None, version=1, now_s=int(time.time()), ttl_s=900)
    assert sec.client.get("/api/v1/sites", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert sec.client.get("/api/v1/sites", headers={"Authorization": "Bearer x.y.z"}).status_code == 401
    assert sec.client.get("/api/v1/sites", headers={"Authorization": "Basic abc"}).status_code == 401


def test_token_ttl_comes_from_settings(sec, api, server_settings):
    server_settings.token_ttl_s = 60
    try:
        assert sec.login("tech").json()["expires_in"] == 60
    finally:
        server_settings.token_ttl_s = 900


def test_deactivated_user_loses_access_at_once(sec):
    headers = sec.headers["tech"]
    assert sec.client.get("/api/v1/machines", headers=headers).status_code == 200
    r = sec.client.post(f"/api/v1/users/{sec.users['tech']}/deactivate", headers=sec.headers["mgr"])
    assert r.status_code == 200 and r.json()["active"] is False
    assert sec.client.get("/api/v1/machines", headers=headers).status_code == 401
    assert sec.login("tech").status_code == 401
    sec.client.post(f"/api/v1/users/{sec.users['tech']}/activate", headers=sec.headers["mgr"])
    assert sec.login("tech").status_code == 200


def test_password_reset_invalidates_old_tokens(sec):
    old = sec.headers["awa"]
    r = sec.client.post(f"/api/v1/users/{sec.users['awa']}/password", headers=sec.admin,
                        json={"password": "a-brand-new-password"})
    assert r.status_code == 200
    assert sec.client.get("/api/v1/auth/me", headers=old).status_code == 401
    assert sec.login("awa", PASSWORD).status_code == 401
    assert sec.login("awa", "a-brand-new-password").status_code == 200


def test_user_creation_refuses_bad_input_and_changes_nothing(sec, db_session):
    before = db_session.scalar(select(func.count()).select_from(User))
    cases = [
        {"username": "x", "password": PASSWORD, "role": "manager"},  # too short a name
        {"username": "newbie", "password": "short", "role": "manager"},  # weak password
        {"username": "newbie", "password": PASSWORD, "role": "artisan"},  # artisan without artisan_id
        {"username": "newbie", "password": PASSWORD, "role": "manager", "artisan_id": sec.own},
        {"username": "newbie", "password": PASSWORD, "role": "artisan", "artisan_id": 999999},
        {"username": "newbie", "password": PASSWORD, "role": "admin"},
    ]
    for body in cases:
        r = sec.client.post("/api/v1/users", json=body, headers=sec.admin)
        assert r.status_code == 422, (body, r.text)
    r = sec.client.post("/api/v1/users", json={"username": "MGR", "password": PASSWORD, "role": "manager"},
                        headers=sec.admin)
    assert r.status_code == 409
    assert db_session.scalar(select(func.count()).select_from(User)) == before


def test_technician_cannot_manage_users(sec):
    r = sec.client.post("/api/v1/users", headers=sec.headers["tech"],
                        json={"username": "sneaky", "password": PASSWORD, "role": "manager"})
    assert r.status_code == 403
    assert sec.login("sneaky").status_code == 401
