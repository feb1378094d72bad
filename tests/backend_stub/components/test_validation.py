from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from backend_stub.components.errors import SettingsInvalid
from backend_stub.components.validation import (
    BusinessRuleValidator,
    ConnectivityValidator,
    Layer,
    Rule,
    SchemaValidator,
    ValidationIssue,
    Validator,
    decision_validator,
    validate_settings,
)
from backend_stub.errors import ConfigurationError, ValidationFailed
from backend_stub.settings import StubSettings

CONFIG_SCHEMA = {
    "type": "object",
    "required": ["port", "db_host"],
    "properties": {"port": {"type": "integer", "minimum": 1024},
                   "db_host": {"type": "string"},
                   "tags": {"type": "array", "items": {"type": "string"}}},
}


def test_schema_issues_name_each_field() -> None:
    v = SchemaValidator(CONFIG_SCHEMA)
    assert v.validate({"port": 8080, "db_host": "x"}) == []
    issues = v.validate({"port": 80, "tags": ["a", 3]})
    assert [(i.path, i.layer) for i in issues] == [("db_host", "schema"), ("port", "schema"),
                                                   ("tags.1", "schema")]
    assert issues[0].message == "is required"
    assert str(issues[1]) == "port: 80 is less than the minimum of 1024"
    assert not v.is_valid({}) and v.is_valid({"port": 2000, "db_host": "h"})


def test_schema_root_prefixes_paths_and_formats_are_checked() -> None:
    v = SchemaValidator({"type": "object", "properties": {
        "host": {"type": "string", "format": "ipv4"}}}, root="conditions")
    assert [i.path for i in v.validate({"host": "999.1.1.1"})] == ["conditions.host"]
    assert str(ValidationIssue("", "whole")) == "whole"


def test_an_invalid_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="the JSON Schema itself is invalid"):
        SchemaValidator({"type": "nonsense"})


def test_business_rules_bool_message_and_crash() -> None:
    def no_privileged_ports(cfg: dict[str, Any]) -> bool:
        return bool(cfg["port"] > 1024)

    v = BusinessRuleValidator([
        no_privileged_ports,
        Rule("localhost only in dev", lambda c: c["db_host"] != "localhost" or c["env"] == "dev",
             "localhost databases are for dev only", "db_host"),
        lambda c: "too many tags" if len(c.get("tags", [])) > 1 else None,
    ])
    issues = v.validate({"port": 80, "db_host": "localhost", "tags": [1, 2]})
    assert str(issues[0]) == "no_privileged_ports failed"
    assert str(issues[1]) == ("db_host: localhost only in dev could not be checked "
                              "(KeyError: 'env')")
    assert str(issues[2]) == "too many tags"
    assert all(i.layer == "business" for i in issues)


def test_connectivity_layer_reports_unreachable_targets() -> None:
    def redis_down(_: Any) -> bool:
        raise ConnectionError("refused")

    issues = ConnectivityValidator([Rule("redis", redis_down, path="redis_url")]).validate({})
    assert issues[0].layer == "connectivity" and "refused" in issues[0].message


def test_validator_stops_at_the_first_failing_layer_unless_run_all() -> None:
    pinged: list[int] = []

    def ping(_: Any) -> bool:
        pinged.append(1)
        return True

    layers: list[Layer] = [SchemaValidator(CONFIG_SCHEMA), ConnectivityValidator([ping])]
    assert len(Validator(layers).validate({"port": 1})) == 2
    assert pinged == []
    Validator(layers, run_all=True).validate({"port": 1})
    assert pinged == [1]
    assert Validator(layers).validate({"port": 2048, "db_host": "h"}) == []


def test_check_raises_validation_failed_with_fields() -> None:
    v = Validator([SchemaValidator(CONFIG_SCHEMA),
                   BusinessRuleValidator([Rule("r", lambda c: False, "again", "port")])],
                  run_all=True)
    with pytest.raises(ValidationFailed) as info:
        v.check({"port": 80, "db_host": "h"}, "the config")
    assert info.value.status_code == 422
    assert info.value.message.startswith("the config is not valid")
    assert info.value.details == {"fields": {
        "port": "80 is less than the minimum of 1024; again"}}
    Validator([SchemaValidator(CONFIG_SCHEMA)]).check({"port": 2000, "db_host": "h"})
    with pytest.raises(ValidationFailed) as whole:
        Validator([BusinessRuleValidator([lambda c: "no"])]).check({})
    assert whole.value.details == {"fields": {"body": "no"}}


# -- decisions ------------------------------------------------------------------------------------


def _veto(**extra: Any) -> dict[str, Any]:
    return {"id": "d1", "approval_id": "a1", "action": "veto", "category": "safety",
            "reason": "unsafe", **extra}


def test_decision_validator_accepts_each_good_action() -> None:
    v = decision_validator()
    assert v.validate(_veto()) == []
    assert v.validate({"id": "d", "approval_id": "a", "action": "approve",
                       "expected_version": 3}) == []
    assert v.validate({"id": "d", "approval_id": "a", "action": "request_changes",
                       "expected_version": 3, "reason": "more tests"}) == []


@pytest.mark.parametrize("decision, path", [
    ({"id": "d", "approval_id": "a", "action": "veto", "reason": "r"}, "category"),
    (_veto(reason="  "), "reason"),
    ({"id": "d", "approval_id": "a", "action": "approve"}, "expected_version"),
    (_veto(action="delete"), "action"),
    (_veto(reason="x" * 2001), "reason"),
    (_veto(attachments=[{"name": "a", "content_type": "t", "data_base64": "!!"}]),
     "attachments"),
    (_veto(attachments=[{"name": "a", "content_type": "t",
                         "data_base64": base64.b64encode(b"x" * (5 * 1024 * 1024 + 1)).decode()}]),
     "attachments"),
])
def test_decision_validator_names_the_bad_field(decision: dict[str, Any], path: str) -> None:
    issues = decision_validator().validate(decision)
    assert [i.path for i in issues] == [path], issues


# -- settings at start-up ------------------------------------------------------------------------


def settings(tmp_path: Path, **kwargs: Any) -> StubSettings:
    return StubSettings(data_dir=tmp_path, **kwargs)


def test_good_settings_pass(tmp_path: Path) -> None:
    validate_settings(settings(tmp_path))
    validate_settings(settings(tmp_path, secret_key=SecretStr("s" * 32), log_level="debug"))


@pytest.mark.parametrize("kwargs, named", [
    ({"redis_url": "http://127.0.0.1:6379"}, "GOVSTUB_REDIS_URL"),
    ({"log_level": "LOUD"}, "GOVSTUB_LOG_LEVEL"),
    ({"otel_endpoint": "127.0.0.1:4318"}, "GOVSTUB_OTEL_ENDPOINT"),
    ({"demo_activity": 2.0}, "GOVSTUB_DEMO_ACTIVITY"),
])
def test_a_bad_setting_stops_start_up_naming_it(tmp_path: Path, kwargs: dict[str, Any],
                                                named: str) -> None:
    with pytest.raises(SettingsInvalid) as info:
        validate_settings(settings(tmp_path, **kwargs))
    assert isinstance(info.value, ConfigurationError)
    assert named in str(info.value) and str(info.value).startswith("the stub cannot start")


def test_a_short_secret_is_named_but_never_echoed(tmp_path: Path) -> None:
    with pytest.raises(SettingsInvalid) as info:
        validate_settings(settings(tmp_path, secret_key=SecretStr("hunter2")))
    assert "GOVSTUB_SECRET_KEY" in str(info.value) and "hunter2" not in str(info.value)


def test_an_unreachable_redis_stops_start_up(tmp_path: Path) -> None:
    from tests.support.services import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(SettingsInvalid, match=r"GOVSTUB_REDIS_URL: Redis at .* is not reachable"):
        validate_settings(settings(tmp_path, redis_url=url))
    validate_settings(settings(tmp_path, redis_url=url), connectivity=False)


@pytest.mark.redis
def test_a_reachable_redis_passes(tmp_path: Path, redis_url: str) -> None:
    validate_settings(settings(tmp_path, redis_url=redis_url))
