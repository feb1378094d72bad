"""Persistence of the authorization server: accounts, codes, refresh tokens, device codes,
revoked access-token ids and signing keys.

Everything goes through ``OAuthStore`` so the grants stay free of SQL. Secrets are looked up
by their SHA-256 hash. The single-use guarantees (a code, a refresh token, a device code) are
atomic ``UPDATE ... WHERE used_at IS NULL`` statements: of two concurrent uses exactly one
wins, whatever the number of stub processes sharing the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from backend_stub.db import Database


def secret_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class User:
    username: str
    sub: str
    scopes: frozenset[str]
    password_hash: str

    def get_user_id(self) -> str:  # Authlib's UserMixin
        return self.sub


@dataclass(frozen=True)
class CodeRecord:
    code_hash: str
    client_id: str
    redirect_uri: str
    scope: str
    sub: str
    code_challenge: str
    code_challenge_method: str
    expires_at: float
    used_at: float | None
    family_id: str | None

    # Authlib's AuthorizationCodeMixin
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class RefreshRecord:
    token_hash: str
    family_id: str
    client_id: str
    sub: str
    scope: str
    access_jti: str
    access_exp: float
    issued_at: float
    expires_at: float
    used_at: float | None
    revoked_at: float | None

    # Authlib's TokenMixin
    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int(self.expires_at - self.issued_at)


@dataclass(frozen=True)
class DeviceRecord:
    device_code_hash: str
    user_code: str
    client_id: str
    scope: str
    expires_at: float
    poll_interval: int
    last_poll_at: float | None
    status: str  # pending | approved | denied | used
    sub: str | None


@dataclass(frozen=True)
class KeyRecord:
    kid: str
    alg: str
    private_pem: str
    created_at: float
    retired_at: float | None


class OAuthStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _one(self, sql: str, **params: Any) -> dict[str, Any] | None:
        # Reads need no commit (a commit costs an fsync with synchronous=FULL).
        with self.db.engine.connect() as conn:
            row = conn.execute(text(sql), params).mappings().first()
        return dict(row) if row else None

    def _exec(self, sql: str, **params: Any) -> int:
        with self.db.engine.begin() as conn:
            return int(conn.execute(text(sql), params).rowcount or 0)

    # --- accounts ----------------------------------------------------------------------
    def get_user(self, username: str) -> User | None:
        row = self._one("SELECT * FROM oauth_users WHERE username = :u", u=username)
        return _user(row) if row else None

    def get_user_by_sub(self, sub: str) -> User | None:
        row = self._one("SELECT * FROM oauth_users WHERE sub = :s", s=sub)
        return _user(row) if row else None

    def add_user(self, username: str, password_hash: str, scopes: Iterable[str]) -> None:
        # No conflict target: the row is unique by username and by sub (the same value
        # here), and of replicas starting together one may meet the other's row on the
        # sub's index first (PostgreSQL raised there; found in CI's replicated tests).
        self._exec(
            "INSERT INTO oauth_users (username, sub, password_hash, scopes) "
            "VALUES (:u, :u, :h, :s) ON CONFLICT DO NOTHING",
            u=username, h=password_hash, s=" ".join(sorted(scopes)),
        )

    # --- generated client secrets ------------------------------------------------------
    def client_secret(self, client_id: str, candidate: str) -> str:
        """The stored secret of ``client_id``; ``candidate`` is stored first when there is
        none. Of several processes starting together, the first insert wins for all."""
        self._exec("INSERT INTO oauth_client_secrets (client_id, secret) VALUES (:c, :s) "
                   "ON CONFLICT (client_id) DO NOTHING", c=client_id, s=candidate)
        row = self._one("SELECT secret FROM oauth_client_secrets WHERE client_id = :c",
                        c=client_id)
        assert row is not None  # inserted just above
        return str(row["secret"])

    # --- signing keys ------------------------------------------------------------------
    def load_keys(self) -> list[KeyRecord]:
        with self.db.engine.begin() as conn:
            rows = conn.execute(
                text("SELECT * FROM oauth_signing_keys ORDER BY created_at")).mappings().all()
        return [KeyRecord(**dict(r)) for r in rows]

    def add_key(self, key: KeyRecord) -> None:
        self._exec(
            "INSERT INTO oauth_signing_keys (kid, alg, private_pem, created_at, retired_at) "
            "VALUES (:kid, :alg, :pem, :c, :r)",
            kid=key.kid, alg=key.alg, pem=key.private_pem, c=key.created_at, r=key.retired_at,
        )

    def retire_keys_except(self, kid: str, now: float) -> None:
        self._exec(
            "UPDATE oauth_signing_keys SET retired_at = :now "
            "WHERE kid <> :kid AND retired_at IS NULL", kid=kid, now=now)

    def delete_keys_retired_before(self, cutoff: float) -> None:
        self._exec("DELETE FROM oauth_signing_keys WHERE retired_at IS NOT NULL "
                   "AND retired_at < :c", c=cutoff)

    # --- authorization codes -----------------------------------------------------------
    def add_code(self, code: str, *, client_id: str, redirect_uri: str, scope: str, sub: str,
                 code_challenge: str, code_challenge_method: str, expires_at: float) -> None:
        self._exec(
            "INSERT INTO oauth_codes (code_hash, client_id, redirect_uri, scope, sub, "
            "code_challenge, code_challenge_method, expires_at) VALUES "
            "(:h, :c, :r, :s, :sub, :cc, :ccm, :e)",
            h=secret_hash(code), c=client_id, r=redirect_uri, s=scope, sub=sub,
            cc=code_challenge, ccm=code_challenge_method, e=expires_at,
        )

    def get_code(self, code: str) -> CodeRecord | None:
        row = self._one("SELECT * FROM oauth_codes WHERE code_hash = :h", h=secret_hash(code))
        return CodeRecord(**row) if row else None

    # --- single use: codes, refresh tokens, device codes --------------------------
    _CONSUME = {
        "code": "UPDATE oauth_codes SET used_at = :now, family_id = :f "
                "WHERE code_hash = :h AND used_at IS NULL",
        "refresh_token": "UPDATE oauth_refresh_tokens SET used_at = :now "
                         "WHERE token_hash = :h AND used_at IS NULL AND revoked_at IS NULL",
        "device_code": "UPDATE oauth_device_codes SET status = 'used' "
                       "WHERE device_code_hash = :h AND status = 'approved'",
    }

    def consume_and_issue(self, kind: str, secret_hash_: str, *, now: float, family_id: str,
                          new_refresh: dict[str, Any] | None) -> bool:
        """Use up a code, refresh token or device code and record the refresh token issued
        for it, in one transaction (one commit). False, with nothing written, when the
        credential was already used: the caller treats that as a replay."""
        with self.db.engine.connect() as conn:
            # (An in-memory database never fsyncs, and shares one connection between threads.)
            relaxed = (kind == "refresh_token" and conn.dialect.name == "sqlite"
                       and self.db.url not in ("sqlite://", "sqlite:///:memory:"))
            if relaxed:
                # A rotation is the hot path (every 15 minutes per device) and losing one to
                # a power cut fails safe: the client's new token is unknown, so it signs in
                # again. So it skips the fsync that synchronous=FULL puts on every commit;
                # WAL still makes it survive a crash of the stub process itself.
                conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
                conn.commit()
            try:
                return self._consume_and_issue(conn, kind, secret_hash_, now=now,
                                               family_id=family_id, new_refresh=new_refresh)
            finally:
                if relaxed:
                    conn.exec_driver_sql("PRAGMA synchronous=FULL")
                    conn.commit()

    def _consume_and_issue(self, conn: Connection, kind: str, secret_hash_: str, *,
                           now: float, family_id: str,
                           new_refresh: dict[str, Any] | None) -> bool:
        with conn.begin() as tx:
            used = conn.execute(text(self._CONSUME[kind]),
                                {"now": now, "f": family_id, "h": secret_hash_}).rowcount
            if used != 1:
                tx.rollback()
                return False
            if new_refresh is not None:
                conn.execute(text(
                    "INSERT INTO oauth_refresh_tokens (token_hash, family_id, client_id, sub, "
                    "scope, access_jti, access_exp, issued_at, expires_at) VALUES "
                    "(:h, :f, :c, :sub, :s, :j, :je, :i, :e)"),
                    {"h": secret_hash(new_refresh["token"]), "f": family_id,
                     "c": new_refresh["client_id"], "sub": new_refresh["sub"],
                     "s": new_refresh["scope"], "j": new_refresh["access_jti"],
                     "je": new_refresh["access_exp"], "i": now,
                     "e": new_refresh["expires_at"]})
        return True

    def get_refresh_token(self, token: str) -> RefreshRecord | None:
        row = self._one("SELECT * FROM oauth_refresh_tokens WHERE token_hash = :h",
                        h=secret_hash(token))
        return RefreshRecord(**row) if row else None

    def revoke_family(self, family_id: str, now: float) -> int:
        """Revoke every refresh token of the family and every access token it issued that
        has not expired yet; returns how many access-token ids were added to the deny list."""
        with self.db.engine.begin() as conn:
            conn.execute(text("UPDATE oauth_refresh_tokens SET revoked_at = :now "
                              "WHERE family_id = :f AND revoked_at IS NULL"),
                         {"now": now, "f": family_id})
            rows = conn.execute(text(
                "SELECT access_jti, access_exp FROM oauth_refresh_tokens "
                "WHERE family_id = :f AND access_exp > :now"), {"f": family_id, "now": now}
            ).all()
        for jti, exp in rows:
            self.revoke_jti(jti, exp)
        return len(rows)

    def family_of_access_jti(self, jti: str) -> str | None:
        row = self._one("SELECT family_id FROM oauth_refresh_tokens WHERE access_jti = :j",
                        j=jti)
        return str(row["family_id"]) if row else None

    # --- revoked access tokens ---------------------------------------------------------
    def revoke_jti(self, jti: str, expires_at: float) -> None:
        with self.db.engine.begin() as conn:
            # Expired tokens are refused anyway; forgetting them keeps the deny list short.
            conn.execute(text("DELETE FROM oauth_revoked_jti WHERE expires_at < :c"),
                         {"c": expires_at - 7 * 24 * 3600})
            # Concurrent revocations of one family insert the same ids (SQLite and PostgreSQL).
            conn.execute(text("INSERT INTO oauth_revoked_jti (jti, expires_at) VALUES (:j, :e) "
                              "ON CONFLICT (jti) DO NOTHING"), {"j": jti, "e": expires_at})

    def revoked_jtis(self, now: float) -> set[str]:
        """Revoked access-token ids that could still pass the expiry check (read-only)."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(text("SELECT jti FROM oauth_revoked_jti WHERE expires_at >= :c"),
                                {"c": now - 300}).all()
        return {r[0] for r in rows}

    # --- device codes ------------------------------------------------------------------
    def add_device_code(self, device_code: str, *, user_code: str, client_id: str, scope: str,
                        expires_at: float, interval: int) -> None:
        self._exec(
            "INSERT INTO oauth_device_codes (device_code_hash, user_code, client_id, scope, "
            "expires_at, poll_interval, status) VALUES (:h, :u, :c, :s, :e, :i, 'pending')",
            h=secret_hash(device_code), u=user_code, c=client_id, s=scope, e=expires_at,
            i=interval,
        )

    def get_device_code(self, device_code: str) -> DeviceRecord | None:
        row = self._one("SELECT * FROM oauth_device_codes WHERE device_code_hash = :h",
                        h=secret_hash(device_code))
        return DeviceRecord(**row) if row else None

    def get_device_by_user_code(self, user_code: str) -> DeviceRecord | None:
        row = self._one("SELECT * FROM oauth_device_codes WHERE user_code = :u", u=user_code)
        return DeviceRecord(**row) if row else None

    def record_device_poll(self, device_code_hash: str, now: float, interval: int) -> None:
        self._exec("UPDATE oauth_device_codes SET last_poll_at = :now, poll_interval = :i "
                   "WHERE device_code_hash = :h", now=now, i=interval, h=device_code_hash)

    def decide_device_code(self, user_code: str, sub: str, approved: bool) -> bool:
        return self._exec(
            "UPDATE oauth_device_codes SET status = :st, sub = :sub "
            "WHERE user_code = :u AND status = 'pending'",
            st="approved" if approved else "denied", sub=sub, u=user_code) == 1


def _user(row: dict[str, Any]) -> User:
    return User(username=row["username"], sub=row["sub"],
                scopes=frozenset(row["scopes"].split()), password_hash=row["password_hash"])
