"""Which errors a form shows: an error appears at its field once the governor has met it
(tried to go on, or edited the field) and stays until the field is fixed. A refusal from
elsewhere (the server, the step-up check) sits at the field it is about until that field
is edited. No Flet here: the seed wizard, the veto form and sign-in share it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class ShownErrors:
    met: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)

    def meet(self, names: Iterable[str]) -> None:
        self.met.update(names)

    def edited(self, name: str) -> None:
        self.met.add(name)
        self.refused.pop(name, None)

    def refuse(self, name: str, message: str) -> None:
        self.refused[name] = message

    def visible(self, errors: dict[str, str]) -> dict[str, str]:
        """``errors`` (field -> what to fix, as the form's rules find them now) as shown:
        those met, then the refusals of fields with no rule error."""
        shown = {k: v for k, v in errors.items() if k in self.met}
        return {**shown, **{k: v for k, v in self.refused.items() if k not in shown}}
