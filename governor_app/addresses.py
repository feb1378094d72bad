"""The app's addresses: every screen, request and seed has a path of its own.

Pure (no Flet): ``parse`` turns what the browser's address bar (or a notification link)
holds into an ``Address``; ``Address.path`` turns it back. Ids are URL-quoted in a path, so
any id the server makes (slashes, spaces, ``?``, ``#``, non-ASCII) survives the round trip;
the few a path cannot hold as they are (``new``, ``.``, ``..``) get a ``~`` in front.

========================  =====================  ===========================
path                      screen                 id
========================  =====================  ===========================
``/`` or ``/dashboard``   ``dashboard``
``/approvals``            ``approvals``
``/approvals/{id}``       ``approval``           the request
``/approvals/{id}/veto``  ``veto``               the request
``/seeds``                ``seeds``
``/seeds/new``            ``seed-wizard``
``/seeds/{id}``           ``seed``               the seed
``/agents``               ``agents``
``/violations``           ``violations``
``/notifications``        ``notifications``
``/outbox``               ``outbox``
``/settings``             ``settings``
``/more``                 ``more``
``/sign-in``              ``sign-in``
anything else             ``unknown``            the path as given
========================  =====================  ===========================
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

# Screens addressed by one fixed segment.
FIXED: dict[str, str] = {
    "dashboard": "dashboard", "approvals": "approvals", "seeds": "seeds",
    "agents": "agents", "violations": "violations", "notifications": "notifications",
    "outbox": "outbox", "settings": "settings", "more": "more", "sign-in": "sign-in",
}
# Screens about one object: screen -> (collection segment, suffix segment or "").
OBJECT_SCREENS: dict[str, tuple[str, str]] = {
    "approval": ("approvals", ""),
    "veto": ("approvals", "veto"),
    "seed": ("seeds", ""),
}
SEED_WIZARD = "seed-wizard"
UNKNOWN = "unknown"
HOME = "/dashboard"
SIGN_IN = "/sign-in"


@dataclass(frozen=True)
class Address:
    """One screen, and the object it shows (``id``) when it shows one."""

    screen: str
    id: str | None = None

    @property
    def path(self) -> str:
        if self.screen == UNKNOWN:
            return self.id or "/"
        if self.screen == SEED_WIZARD:
            return "/seeds/new"
        if self.screen in OBJECT_SCREENS:
            if not self.id:
                raise ValueError(f"the {self.screen!r} screen needs an id; give one")
            collection, suffix = OBJECT_SCREENS[self.screen]
            path = f"/{collection}/{_quote(self.id)}" + (f"/{suffix}" if suffix else "")
            # Flet's web server answers a path whose last segment has an extension
            # ("REQ.1") with 404 instead of the app: a trailing slash keeps it a route.
            return path + "/" if "." in path.rsplit("/", 1)[-1] else path
        return f"/{self.screen}"

    @property
    def section(self) -> str:
        """The top-level screen the navigation highlights (``/approvals`` for a request)."""
        if self.screen in OBJECT_SCREENS:
            return "/" + OBJECT_SCREENS[self.screen][0]
        if self.screen == SEED_WIZARD:
            return "/seeds"
        if self.screen == UNKNOWN:
            return ""
        return f"/{self.screen}"


def _quote(object_id: str) -> str:
    # Ids the path cannot hold as they are get a "~" in front: "new" (the wizard's
    # address) and "." or ".." (the browser resolves those, percent-encoded or not). So
    # does an id that starts with "~", so that "~" can always be taken off again.
    if object_id == "new" or object_id.startswith("~") or not object_id.strip("."):
        object_id = "~" + object_id
    return quote(object_id, safe="")


def _unquote(segment: str) -> str:
    object_id = unquote(segment)
    return object_id[1:] if object_id.startswith("~") else object_id


def parse(route: str) -> Address:
    """What ``route`` (a path, perhaps with a query or fragment) addresses."""
    path = urlsplit(route).path if route else "/"
    raw = [p for p in path.split("/") if p]
    if not raw:
        return Address("dashboard")
    head = raw[0]
    if len(raw) == 1 and head in FIXED:
        return Address(FIXED[head])
    if head == "seeds" and len(raw) == 2 and raw[1] == "new":
        return Address(SEED_WIZARD)
    if head in ("approvals", "seeds") and len(raw) in (2, 3):
        object_id = _unquote(raw[1])
        if head == "seeds" and len(raw) == 2:
            return Address("seed", object_id)
        if head == "approvals" and len(raw) == 2:
            return Address("approval", object_id)
        if head == "approvals" and raw[2] == "veto":
            return Address("veto", object_id)
    return Address(UNKNOWN, path)


def approval(approval_id: str) -> str:
    return Address("approval", approval_id).path


def veto(approval_id: str) -> str:
    return Address("veto", approval_id).path


def seed(seed_id: str) -> str:
    return Address("seed", seed_id).path


def after_sign_in(wanted: str | None) -> str:
    """Where to go once signed in: the address the governor opened, unless it was the
    sign-in screen itself (or nothing), then the dashboard."""
    if not wanted or parse(wanted).screen == "sign-in":
        return HOME
    return wanted
