"""The seed wizard's state: a draft built from choices, step by step, validated with the
server's own JSON Schema of a new seed (``GovernorClient.seed_schema``).

The rule kinds the wizard offers come from that schema too, so a rule the server learns is
offered without a new app; the wizard holds no copy of the server's bounds, enums or
patterns. What the governor typed is turned into the JSON value it stands for (a whole
number, a number, a list) and, when it does not convert, sent to the schema as typed: the
schema then refuses it at its field, exactly as the server would.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from governor_app import format as fmt
from governor_app.form_errors import ShownErrors
from sync.models import SeedDraft, SeedSchema

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

# Capability patterns are offered as choices: the server also parses them by a grammar no
# JSON Schema can say, and each of these is one it accepts.
CAPABILITY_CHOICES = (
    "file_read:/data/**", "file_read:*", "network_outbound:*.internal",
    "network_outbound:*", "env_read:*", "custom:*", "file_write:/tmp/*")
SUGGESTED_CHOICES: dict[str, tuple[str, ...]] = {"capabilities_within": CAPABILITY_CHOICES}

# Human words for the rule kinds the server knows today; a rule it adds later is offered
# under its humanised name.
RULE_LABELS = {
    "industry_in": "Industries",
    "agent_kind_in": "Agent kinds",
    "capabilities_within": "Capabilities the agent may stay within",
    "max_daily_token_budget": "Daily token budget at most",
    "max_monthly_cost_usd": "Monthly cost at most (USD)",
    "no_dangerous_capabilities": "No dangerous capabilities",
    "wasm_valid": "The WASM module is valid",
    "max_memory_pages": "Memory pages at most",
    "requester_in": "Requested by (comma-separated names)",
}
FIELD_LABELS = {"title": "Seed title", "description": "Seed description"}
# What an empty required field asks for, in the wizard's words.
EMPTY_HINTS = {"title": "Give the seed a title: what kind of request it covers.",
               "description": "Describe when this precedent applies."}
NO_RULES = ("The server's seed rules are not on this device yet: connect once so the app "
            "can fetch them, then create the seed.")
NO_CONDITION = ("Choose at least one condition; a seed without rules would match every "
                "request.")

RuleKind = Literal["choices", "list", "integer", "number", "flag"]


@dataclass(frozen=True)
class RuleField:
    """One rule kind of the server's schema as the wizard offers it."""

    name: str
    label: str
    kind: RuleKind
    choices: tuple[str, ...] = ()


def _kind(spec: dict[str, Any]) -> RuleKind | None:
    if spec.get("const") is True:
        return "flag"
    if spec.get("type") in ("integer", "number"):
        return "integer" if spec["type"] == "integer" else "number"
    if spec.get("type") == "array":
        items = spec.get("items", {})
        return "choices" if "enum" in items else "list"
    return None


def rule_fields(schema: SeedSchema | None) -> tuple[RuleField, ...]:
    """Every condition rule of the server's schema the wizard can offer, in its order."""
    if schema is None:
        return ()
    rules = schema.body.get("properties", {}).get("conditions", {}).get("properties", {})
    fields: list[RuleField] = []
    for name, spec in rules.items():
        kind = _kind(spec)
        if kind is None:
            continue
        choices = tuple(str(c) for c in spec.get("items", {}).get("enum", ()))
        if kind == "list" and name in SUGGESTED_CHOICES:
            kind, choices = "choices", SUGGESTED_CHOICES[name]
        fields.append(RuleField(name, RULE_LABELS.get(name, fmt.humanise(name)), kind,
                                choices))
    return tuple(fields)


def choice_label(rule: str, choice: str) -> str:
    """Industries and agent kinds in words ("Centre of Excellence"); patterns as written."""
    return fmt.industry(choice) if rule in ("industry_in", "agent_kind_in") else choice


def _typed_value(kind: RuleKind, text: str) -> Any:
    """The JSON value ``text`` stands for; ``text`` itself when it stands for none (the
    schema then refuses it as the server would refuse it)."""
    raw = text.strip()
    if kind == "list":
        return [part.strip() for part in raw.split(",") if part.strip()]
    try:
        number = int(raw) if kind == "integer" else float(raw)
    except ValueError:
        return raw
    # JSON carries no NaN or infinity: a value the server could never receive.
    return number if math.isfinite(number) else raw


def _message(label: str, error: ValidationError) -> str:
    """What is wrong with the field called ``label`` and what to do, in words."""
    bound = error.validator_value
    words = {
        "maximum": lambda: f"{label}: the server takes at most {bound:,}; enter a smaller "
                           "number.",
        "minimum": lambda: f"{label}: the server takes at least {bound:,}; enter a larger "
                           "number.",
        "type": lambda: f"{label}: enter a whole number." if bound == "integer"
        else f"{label}: enter a number." if bound == "number"
        else f"{label}: enter a {bound}.",
        "maxLength": lambda: f"{label}: shorten it to {bound:,} characters.",
        "minLength": lambda: f"{label}: fill it in." if bound == 1
        else f"{label}: enter at least {bound} characters.",
        "uniqueItems": lambda: f"{label}: name each entry once.",
        "minItems": lambda: f"{label}: choose at least {bound}.",
        "maxItems": lambda: f"{label}: choose at most {bound}.",
        "enum": lambda: f"{label}: {error.instance!r} is not one the server knows; "
                        "choose from the list.",
        "pattern": lambda: f"{label}: {error.instance!r} is not in the form the server "
                           "expects.",
        "minProperties": lambda: NO_CONDITION,
    }
    say = words.get(str(error.validator))
    return say() if say else f"{label}: {error.message}."


def describe_conditions(conditions: dict[str, Any]) -> list[str]:
    """The rule set in words, one line per rule."""
    words: list[str] = []
    for name, rule in conditions.items():
        if name == "industry_in":
            words.append("Industry is one of " + ", ".join(fmt.industry(i) for i in rule))
        elif name == "agent_kind_in":
            words.append("Agent kind is one of " + ", ".join(rule))
        elif name == "capabilities_within":
            words.append("Capabilities stay within " + ", ".join(rule))
        elif name == "max_daily_token_budget":
            words.append(f"Daily token budget at most {int(rule):,}")
        elif name == "max_monthly_cost_usd":
            words.append(f"Monthly cost at most ${rule}")
        elif name == "no_dangerous_capabilities":
            words.append("No dangerous capabilities")
        elif name == "wasm_valid":
            words.append("The WASM module is valid")
        elif name == "max_memory_pages":
            words.append(f"At most {rule} memory pages")
        elif name == "requester_in":
            words.append("Requested by " + ", ".join(rule))
        else:
            words.append(f"{fmt.humanise(name)}: {rule}")
    return words


@dataclass
class SeedWizard:
    """A new seed, step by step. ``schema`` is the server's (None until first synced)."""

    STEPS: ClassVar[tuple[str, ...]] = ("About", "Conditions", "Auto-approve", "Review")
    schema: SeedSchema | None = None
    step: int = 0
    title: str = ""
    description: str = ""
    chosen: dict[str, set[str]] = field(default_factory=dict)  # choice rules
    typed: dict[str, str] = field(default_factory=dict)  # number and list rules, as typed
    flags: set[str] = field(default_factory=set)  # the "must hold" rules turned on
    auto_approve: bool = False
    shown: ShownErrors = field(default_factory=ShownErrors)

    def fields(self) -> tuple[RuleField, ...]:
        return rule_fields(self.schema)

    def conditions(self) -> dict[str, Any]:
        rules: dict[str, Any] = {}
        for f in self.fields():
            if f.kind == "choices" and self.chosen.get(f.name):
                rules[f.name] = sorted(self.chosen[f.name])
            elif f.kind == "flag" and f.name in self.flags:
                rules[f.name] = True
            elif f.kind in ("integer", "number", "list") and self.typed.get(f.name, "").strip():
                rules[f.name] = _typed_value(f.kind, self.typed[f.name])
        return rules

    def body(self) -> dict[str, Any]:
        """What ``POST /seeds`` receives."""
        return {"title": self.title.strip(), "description": self.description.strip(),
                "conditions": self.conditions(), "auto_approve": self.auto_approve}

    def _issues(self) -> Iterator[tuple[str, str]]:
        assert self.schema is not None
        # Imported here, not with the module: the shell imports this module (the seeds
        # list describes conditions with it) before the first screen, and jsonschema took
        # ~40 ms of that; only the wizard validates.
        from jsonschema import Draft202012Validator

        labels = {**FIELD_LABELS, **{f.name: f.label for f in self.fields()}}
        validator = Draft202012Validator(self.schema.body)
        for error in validator.iter_errors(self.body()):
            path = [str(p) for p in error.absolute_path]
            name = path[1] if len(path) > 1 and path[0] == "conditions" else \
                path[0] if path else "form"
            if error.validator == "minLength" and not error.instance and name in EMPTY_HINTS:
                yield name, EMPTY_HINTS[name]
            else:
                yield name, _message(labels.get(name, fmt.humanise(name)), error)

    def errors(self, step: int | None = None) -> dict[str, str]:
        """Field -> what to fix, for one step (or every step when ``step`` is None)."""
        if self.schema is None:
            return {"conditions": NO_RULES}
        steps = range(len(self.STEPS)) if step is None else [step]
        rule_names = {f.name for f in self.fields()} | {"conditions"}
        errors: dict[str, str] = {}
        for name, message in sorted(self._issues()):
            at = 1 if name in rule_names else 0
            if at in steps:
                errors.setdefault(name, message)
        return errors

    def visible_errors(self) -> dict[str, str]:
        """The errors of this step the governor has met: each stays until it is fixed."""
        return self.shown.visible(self.errors(self.step))

    def edited(self, name: str) -> None:
        self.shown.edited(name)
        if name not in FIELD_LABELS:
            self.shown.edited("conditions")  # "choose at least one" follows every rule

    def next(self) -> bool:
        problems = self.errors(self.step)
        self.shown.meet(problems)
        if problems:
            return False
        self.step = min(self.step + 1, len(self.STEPS) - 1)
        return True

    def back(self) -> None:
        self.step = max(0, self.step - 1)

    def ready(self) -> bool:
        """Whether the draft may be created; if not, every error shows and the wizard goes
        to the first step that has one."""
        problems = self.errors()
        self.shown.meet(problems)
        if problems:
            self.step = min(self._step_of(name) for name in problems)
        return not problems

    def _step_of(self, name: str) -> int:
        return 0 if name in FIELD_LABELS else 1

    def draft(self) -> SeedDraft:
        b = self.body()
        return SeedDraft(title=b["title"], description=b["description"],
                         conditions=b["conditions"], auto_approve=b["auto_approve"])

    def review(self) -> list[str]:
        return [f"Title: {self.title.strip()}", f"Description: {self.description.strip()}",
                *describe_conditions(self.conditions()),
                "Auto-approve full matches" if self.auto_approve else "Suggest only"]
