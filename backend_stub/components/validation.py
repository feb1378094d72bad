"""Validation: JSON Schema, business rules and connectivity checks, composed.

``Validator([SchemaValidator(schema), BusinessRuleValidator(rules), ConnectivityValidator(
checks)])`` runs the layers in order and stops after the first layer that finds problems
(no point pinging Redis at a URL that is not even a URL). Every problem is a
``ValidationIssue`` naming the field (``path``) and saying what is wrong.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

from backend_stub.errors import ValidationFailed


@dataclass(frozen=True)
class ValidationIssue:
    path: str
    message: str
    layer: str = "schema"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class Layer(Protocol):
    layer: str

    def validate(self, value: Any) -> list[ValidationIssue]: ...


def _join(root: str, parts: Sequence[Any]) -> str:
    return ".".join([p for p in (root, *(str(x) for x in parts)) if p])


class SchemaValidator:
    """JSON Schema (draft 2020-12, formats checked) with one issue per problem, sorted by
    path; a missing required property is reported at the property's own path."""

    layer = "schema"

    def __init__(self, schema: Mapping[str, Any], *, root: str = "") -> None:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"the JSON Schema itself is invalid ({exc.message}); fix the "
                             "schema before validating with it") from exc
        self.schema = schema
        self.root = root
        self._validator = Draft202012Validator(schema, format_checker=FormatChecker())

    def validate(self, value: Any) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        for error in self._validator.iter_errors(value):
            parts = list(error.absolute_path)
            if error.validator == "required" and isinstance(error.instance, Mapping):
                for name in error.validator_value:
                    if name not in error.instance:
                        issues.append(ValidationIssue(_join(self.root, [*parts, name]),
                                                      "is required", self.layer))
                continue
            issues.append(ValidationIssue(_join(self.root, parts), error.message, self.layer))
        return sorted(issues, key=lambda i: (i.path, i.message))

    def is_valid(self, value: Any) -> bool:
        return self._validator.is_valid(value)


Check = Callable[[Any], "bool | str | None"]


@dataclass(frozen=True)
class Rule:
    """A named check: it returns ``True``/``None`` (fine), ``False`` (``message`` applies)
    or a string (the message itself)."""

    name: str
    check: Check
    message: str = ""
    path: str = ""


def _as_rule(item: Rule | Check, index: int) -> Rule:
    if isinstance(item, Rule):
        return item
    return Rule(getattr(item, "__name__", f"rule {index + 1}"), item)


class BusinessRuleValidator:
    layer = "business"

    def __init__(self, rules: Sequence[Rule | Check]) -> None:
        self.rules = [_as_rule(r, i) for i, r in enumerate(rules)]

    def validate(self, value: Any) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        for rule in self.rules:
            try:
                result = rule.check(value)
            except Exception as exc:  # a rule that cannot even run is a finding, not a crash
                issues.append(ValidationIssue(
                    rule.path, f"{rule.name} could not be checked ({type(exc).__name__}: "
                    f"{exc})", self.layer))
                continue
            if result is False:
                issues.append(ValidationIssue(rule.path, rule.message or f"{rule.name} failed",
                                              self.layer))
            elif isinstance(result, str) and result:
                issues.append(ValidationIssue(rule.path, result, self.layer))
        return issues


class ConnectivityValidator(BusinessRuleValidator):
    """Checks that reach out (ping Redis, open a database connection). A check that raises
    reports the error as the reason the target is unreachable."""

    layer = "connectivity"


class Validator:
    """Layers in order; stops after the first layer with issues unless ``run_all``."""

    def __init__(self, validators: Sequence[Layer], *, run_all: bool = False) -> None:
        self.validators = list(validators)
        self.run_all = run_all

    def validate(self, value: Any) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        for validator in self.validators:
            found = validator.validate(value)
            issues.extend(found)
            if found and not self.run_all:
                break
        return issues

    def check(self, value: Any, what: str = "The request") -> None:
        """Raise ``ValidationFailed`` (422 in the API) naming every field that is wrong."""
        issues = self.validate(value)
        if issues:
            fields: dict[str, str] = {}
            for issue in issues:
                key = issue.path or "body"
                fields[key] = f"{fields[key]}; {issue.message}" if key in fields \
                    else issue.message
            raise ValidationFailed(f"{what} is not valid; fix the fields named in details.",
                                   details={"fields": fields})


# -- the stub's own validators ---------------------------------------------------------------

DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "approval_id", "action"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 200},
        "approval_id": {"type": "string", "minLength": 1, "maxLength": 200},
        "action": {"enum": ["approve", "request_changes", "veto"]},
        "expected_version": {"type": "integer", "minimum": 0},
        "category": {"enum": ["constitutional", "safety", "budget", "other"]},
        "reason": {"type": "string", "maxLength": 2000},
        "comment": {"type": "string", "maxLength": 2000},
        "attachments": {"type": "array", "maxItems": 5, "items": {
            "type": "object", "required": ["name", "content_type", "data_base64"],
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 255},
                           "content_type": {"type": "string", "minLength": 1},
                           "data_base64": {"type": "string"}}}},
        "decided_at": {"type": "string"},
        "device_id": {"type": "string", "maxLength": 200},
    },
}

MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024


def _attachments_size(decision: Mapping[str, Any]) -> str | None:
    total = 0
    for item in decision.get("attachments") or []:
        try:
            total += len(base64.b64decode(item["data_base64"], validate=True))
        except (binascii.Error, ValueError):
            return f"attachment {item.get('name')!r} is not valid base64"
    if total > MAX_ATTACHMENT_BYTES:
        return f"attachments total {total} bytes; the limit is 5 MB in all"
    return None


DECISION_RULES: list[Rule] = [
    Rule("veto needs a category", lambda d: d["action"] != "veto" or "category" in d,
         "a veto needs a category: constitutional, safety, budget or other", "category"),
    Rule("veto and request_changes need a reason",
         lambda d: d["action"] == "approve" or bool(str(d.get("reason") or "").strip()),
         "give a reason of 1 to 2,000 characters", "reason"),
    Rule("approve and request_changes need the version seen",
         lambda d: d["action"] == "veto" or "expected_version" in d,
         "send the expected_version you saw, so a concurrent change is caught",
         "expected_version"),
    Rule("attachments within 5 MB", _attachments_size, path="attachments"),
]


def decision_validator() -> Validator:
    """Validates one batch decision item (schema, then the action's own rules)."""
    return Validator([SchemaValidator(DECISION_SCHEMA), BusinessRuleValidator(DECISION_RULES)])


# -- the stub's settings, checked at start-up ------------------------------------------------

SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "GOVSTUB_REDIS_URL": {"type": ["string", "null"],
                              "pattern": r"^(redis|rediss|unix)://",
                              "description": "redis://HOST:PORT/DB"},
        "GOVSTUB_OTEL_EXPORTER": {"enum": ["none", "console", "otlp"]},
        "GOVSTUB_OTEL_ENDPOINT": {"type": ["string", "null"], "pattern": r"^https?://"},
        "GOVSTUB_LOG_LEVEL": {"type": "string",
                              "pattern": r"(?i)^(debug|info|warning|error|critical)$"},
        "GOVSTUB_REQUESTS_PER_MINUTE": {"type": "integer", "minimum": 1},
        "GOVSTUB_SECRET_KEY": {"type": ["string", "null"], "minLength": 16},
    },
}


def _settings_view(settings: Any) -> dict[str, Any]:
    secret = getattr(settings, "secret_key", None)
    return {
        "GOVSTUB_REDIS_URL": settings.redis_url,
        "GOVSTUB_OTEL_EXPORTER": settings.otel_exporter,
        "GOVSTUB_OTEL_ENDPOINT": getattr(settings, "otel_endpoint", None),
        "GOVSTUB_LOG_LEVEL": settings.log_level,
        "GOVSTUB_REQUESTS_PER_MINUTE": settings.requests_per_minute,
        "GOVSTUB_SECRET_KEY": None if secret is None else secret.get_secret_value(),
        "GOVSTUB_DEMO": settings.demo,
        "GOVSTUB_DEMO_ACTIVITY": settings.demo_activity,
    }


def _redis_reachable(view: Mapping[str, Any]) -> str | None:
    url = view["GOVSTUB_REDIS_URL"]
    if not url:
        return None
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return (f"Redis at {url!r} is not reachable ({exc}); start it or unset "
                "GOVSTUB_REDIS_URL (--redis)")
    return None


def settings_validator(*, connectivity: bool = True) -> Validator:
    rules = BusinessRuleValidator([
        Rule("demo activity needs demo",
             lambda v: not v["GOVSTUB_DEMO_ACTIVITY"] or bool(v["GOVSTUB_DEMO"]),
             "demo activity only runs with demo data; add --demo (GOVSTUB_DEMO=1)",
             "GOVSTUB_DEMO_ACTIVITY"),
    ])
    layers: list[Layer] = [SchemaValidator(SETTINGS_SCHEMA), rules]
    if connectivity:
        layers.append(ConnectivityValidator([Rule("redis", _redis_reachable,
                                                  path="GOVSTUB_REDIS_URL")]))
    return Validator(layers)


def validate_settings(settings: Any, *, connectivity: bool = True) -> None:
    """Stop start-up (``SettingsInvalid``) with a message naming each bad setting."""
    from backend_stub.components.errors import SettingsInvalid

    view = _settings_view(settings)
    issues = settings_validator(connectivity=connectivity).validate(view)
    if issues:
        messages = []
        for issue in issues:
            shown = issue.message
            if issue.path == "GOVSTUB_SECRET_KEY":
                # Never echo a secret back into logs.
                shown = "is too short; use at least 16 characters (32 random bytes is best)"
            messages.append(f"{issue.path}: {shown}" if issue.path else shown)
        raise SettingsInvalid(messages)
