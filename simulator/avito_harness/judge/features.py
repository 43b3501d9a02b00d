"""The feature check a run makes before any scenario: every file parsed, every step matched, the selection made.

Seconds, not minutes: a syntax error, an unknown step or an unknown fault preset is named with ``file:line``,
the parser's message and a did-you-mean, and nothing starts. Scenario names are the ones the reports print
(an outline's example rendered into its name), so ``--scenario`` takes a name exactly as a report shows it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import parse
from pytest_bdd.exceptions import GherkinParseError
from pytest_bdd.gherkin_parser import get_gherkin_document
from pytest_bdd.parser import Feature, FeatureParser, ScenarioTemplate
from pytest_bdd.scenario import scenario_wrapper_template_registry
from pytest_bdd.steps import step_function_context_registry

from avito_harness.judge.step_params import describe_field, wrong_value
from avito_harness.judge.verdict import CannotJudge, Category

__all__ = ["ENCODING", "FIELD", "FeatureProblems", "PlannedScenario", "template_of", "unknown_steps", "StepDef", "load_features", "select", "step_library", "step_problem",
           "STAGE_TAGS", "stage_of"]

#: Feature files are UTF-8; a byte-order mark some editors write is allowed.
ENCODING = "utf-8-sig"
#: A field of a step pattern: ``{name}`` or ``{name:type}``.
FIELD = re.compile(r"\{(\w+)(?::([^}]*))?\}")

#: ``--stage`` values and the tag each selects.
STAGE_TAGS = {"1": "stage1", "2": "stage2", "3": "stage3", "4": "stage4", "5": "stage5", "errors": "avito_errors"}
STAGE_NAMES = {"stage1": "1 webhook", "stage2": "2 inbound", "stage3": "3 outbound", "stage4": "4 routing",
               "stage5": "5 end to end"}


@dataclass(frozen=True)
class PlannedScenario:
    """One scenario as the run will judge it (an outline gives one per example)."""

    name: str  # as every report prints it
    feature: str
    path: str  # the feature file (absolute)
    line: int
    tags: frozenset[str]
    template: str  # the scenario's name in the file (pytest-bdd's key)
    example: tuple[str, ...] | None  # an outline's example values

    @property
    def key(self) -> tuple[str, str, tuple[str, ...] | None]:
        return (self.path, self.template, self.example)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def stage_of(tags: Iterable[str], feature: str) -> str:
    """The report's group: the rollout stage, "Avito errors", or else the scenario's Feature name."""
    tags = set(tags)
    if "avito_errors" in tags:
        return "Avito errors"
    found = [STAGE_NAMES[t] for t in sorted(tags) if t in STAGE_NAMES]
    return found[0] if found else (feature or "other")


@dataclass(frozen=True)
class StepDef:
    kind: str  # given / when / then
    pattern: str  # as written in the step definition
    parser: Any  # pytest_bdd.parsers.StepParser
    module: str

    def matches(self, text: str) -> bool:
        return bool(self.parser.is_matching(text))

    def example(self) -> str:
        return FIELD.sub(lambda m: m.group(1).upper(), self.pattern)


def step_library(prefix: str = "avito_harness.") -> list[StepDef]:
    """Every step definition registered by modules under ``prefix`` (importing our library registers them)."""
    from avito_harness.judge.steps import load

    load()  # importing the step modules registers their definitions
    found = {}
    for context in list(step_function_context_registry.values()):
        module = getattr(context.step_func, "__module__", "") or ""
        if not module.startswith(prefix):
            continue
        pattern = str(getattr(context.parser, "name", ""))
        kind = str(context.type or "any")  # @step: a definition for any keyword
        found[(kind, pattern)] = StepDef(kind, pattern, context.parser, module)
    return list(found.values())


def template_of(item: Any) -> ScenarioTemplate | None:
    """The pytest-bdd scenario a pytest item runs, or None for any other test."""
    obj = getattr(item, "obj", None)
    return scenario_wrapper_template_registry.get(obj) if callable(obj) else None


def unknown_steps(items: Iterable[Any]) -> list[str]:
    """``file:line: ...`` for every step of the collected pytest-bdd scenarios that no registered definition
    (ours or the project's own) matches."""
    library: list[StepDef] | None = None
    problems: list[str] = []
    for item in items:
        template = template_of(item)
        if template is None:
            continue
        library = library if library is not None else step_library(prefix="")
        example = getattr(getattr(item, "callspec", None), "params", {}).get("_pytest_bdd_example") or {}
        if not template._steps:
            problems.append(f"{template.feature.filename}:{template.line_number}: the scenario \"{template.name}\" "
                            "has no steps: it would pass having checked nothing")
        for step in template.render(example).steps:
            problem = step_problem(step.type, step.name, library)
            if problem is not None:
                problems.append(f"{template.feature.filename}:{step.line_number}: unknown step "
                                f"\"{step.keyword} {step.name}\": {problem}")
    return list(dict.fromkeys(problems))


def _loose(pattern: str) -> parse.Parser:
    return parse.compile(FIELD.sub(lambda m: "{" + m.group(1) + "}", pattern))


def step_problem(kind: str, text: str, library: Sequence[StepDef]) -> str | None:
    """None when a step of ``kind`` matches ``text``; else what is wrong, with a did-you-mean."""
    same = [d for d in library if d.kind in (kind, "any")]
    if any(d.matches(text) for d in same):
        return None
    for d in same:
        found = _loose(d.pattern).parse(text)
        if found is None:
            continue
        types = {m.group(1): m.group(2) for m in FIELD.finditer(d.pattern)}
        bad = [(name, str(value), types.get(name)) for name, value in found.named.items()
               if wrong_value(types.get(name), str(value))]
        if bad:
            name, value, field_type = bad[0]
            return (f'"{value}" is not {describe_field(field_type)} (parameter {{{name}}} of '
                    f'"{kind.capitalize()} {d.pattern}")')
    other = [d for d in library if d.kind != kind and d.matches(text)]
    if other:
        return f'no {kind.capitalize()} step says this; it is a {other[0].kind.capitalize()} step'
    close = difflib.get_close_matches(text, [d.example() for d in same], n=1, cutoff=0.4)
    hint = ""
    if close:
        (pick,) = [d for d in same if d.example() == close[0]][:1]
        hint = f'; did you mean "{kind.capitalize()} {pick.pattern}"?'
    return f"no step of the library matches{hint} (`avito-harness steps` lists them)"


def _printed_names(template: ScenarioTemplate) -> list[tuple[tuple[str, ...] | None, str, frozenset[str]]]:
    """(example values, printed name, the example's tags) for each scenario a template makes."""
    if not template.examples:
        return [(None, template.name, frozenset())]
    rows = [(tuple(ctx.values()), template.render(ctx).name, frozenset(ex.tags or ()))
            for ex in template.examples for ctx in ex.as_contexts()]
    names = [name for _, name, _ in rows]
    return [(values, name if names.count(name) == 1 else f"{name} [{', '.join(values)}]", tags)
            for values, name, tags in rows]


def _all_scenarios(path: Path, feature: Feature, parser: FeatureParser) -> tuple[list[ScenarioTemplate], list[str]]:
    """Every scenario in the file, repeats included (pytest-bdd keeps one per name and silently drops the others:
    each repeat is a problem, and its steps are checked all the same)."""
    doc = get_gherkin_document(str(path), ENCODING)
    seen: dict[str, int] = {}
    templates, problems = [], []
    for child in list(doc.feature.children) if doc.feature else []:
        found = [child.scenario] if child.scenario else [c.scenario for c in (child.rule.children if child.rule
                                                                              else []) if c.scenario]
        for data in found:
            if data.name in seen:
                problems.append(f"{path}:{data.location.line}: a second scenario named \"{data.name}\" (the first "
                                f"is on line {seen[data.name]}): only one of them would run; rename one")
            seen.setdefault(data.name, data.location.line)
            templates.append(parser.parse_scenario(data, feature))
    return templates, problems


def _parse_file(path: Path, library: Sequence[StepDef]) -> tuple[list[PlannedScenario], list[str]]:
    parser = FeatureParser(str(path.parent), path.name, encoding=ENCODING)
    try:
        feature = parser.parse()
        every, problems = _all_scenarios(path, feature, parser)
    except GherkinParseError as exc:
        return [], [f"{path}:{exc.line}: {exc.message} (line: {exc.line_content.strip()!r})"]
    except (UnicodeDecodeError, OSError) as exc:
        return [], [f"{path}: cannot be read as UTF-8 text: {exc}"]
    except Exception as exc:  # noqa: BLE001 - pytest-bdd's parser on an empty or odd file
        what = "holds no Feature" if isinstance(exc, KeyError) else f"cannot be parsed ({type(exc).__name__}: {exc})"
        return [], [f"{path}:1: the file {what}"]
    if not feature.scenarios:
        problems.append(f"{path}:{feature.line_number}: the feature \"{feature.name}\" has no scenario "
                        "(a scenario starts with a line \"Scenario: its name\")")
    for template in every:
        if not template._steps:
            problems.append(f"{path}:{template.line_number}: the scenario \"{template.name}\" has no steps: it would "
                            "pass having checked nothing")
        if template.templated and not any(True for ex in template.examples for _ in ex.as_contexts()):
            problems.append(f"{path}:{template.line_number}: the outline \"{template.name}\" has no example rows: "
                            "nothing of it would run")
        contexts = [ctx for ex in template.examples for ctx in ex.as_contexts()] or [{}]
        for ctx in contexts:
            for step in template.render(ctx).steps:
                problem = step_problem(step.type, step.name, library)
                if problem is not None:
                    problems.append(f"{path}:{step.line_number}: unknown step \"{step.keyword} {step.name}\": {problem}")
    planned = []
    for template in feature.scenarios.values():
        rule_tags = template.rule.tags if template.rule is not None else set()
        for values, name, example_tags in _printed_names(template):
            tags = frozenset(template.tags | feature.tags | rule_tags | example_tags)
            planned.append(PlannedScenario(name, feature.name, str(path), template.line_number, tags, template.name,
                                           values))
    return planned, sorted(dict.fromkeys(problems), key=_line_of)


def load_features(dirs: Sequence[Path], library: Sequence[StepDef] | None = None) -> list[PlannedScenario]:
    """Every scenario of the feature files under ``dirs``; :class:`CannotJudge` (feature_error) names every
    problem found, the first in the one-line reason, all of them in ``problems``."""
    library = step_library() if library is None else library
    planned: list[PlannedScenario] = []
    problems: list[str] = []
    for directory in dirs:
        files = sorted(directory.rglob("*.feature"))
        if not files:
            problems.append(f"{directory}: no .feature file in this folder")
        for path in files:
            found, wrong = _parse_file(path.resolve(), library)
            planned += found
            problems += wrong
    if problems:
        raise FeatureProblems(problems)
    return planned


def _line_of(problem: str) -> int:
    found = re.match(r"[^\n]*?:(\d+): ", problem)
    return int(found.group(1)) if found else 0


class FeatureProblems(CannotJudge):
    """Feature files that cannot run: every problem, the first in the reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(Category.FEATURE, problems[0], details=problems)
        self.problems = self.details


def select(planned: Sequence[PlannedScenario], *, stages: Sequence[str] = (),
           names: Sequence[str] = ()) -> list[PlannedScenario]:
    """The scenarios ``--stage`` and ``--scenario`` pick; :class:`CannotJudge` (usage_error) when a name or a stage
    picks nothing, with the nearest names."""
    chosen = list(planned)
    if stages:
        tags = {STAGE_TAGS[s] for s in stages}
        chosen = [p for p in chosen if p.tags & tags]
        if not chosen:
            raise CannotJudge(Category.USAGE, f"--stage {', '.join(stages)} selects no scenario of the features run")
    if any(not n.strip() for n in names):
        raise CannotJudge(Category.USAGE, "--scenario needs a name (or a part of one); an empty one would select all")
    if names:
        wanted = [n.strip().casefold() for n in names]
        for given, text in zip(names, wanted, strict=True):
            if not any(text == p.name.casefold() or text in p.name.casefold() for p in chosen):
                close = difflib.get_close_matches(given, [p.name for p in chosen], n=3, cutoff=0.3)
                hint = f"; nearest: {'; '.join(repr(c) for c in close)}" if close else ""
                raise CannotJudge(Category.USAGE, f"--scenario {given!r} matches no scenario{hint}")
        chosen = [p for p in chosen if any(t == p.name.casefold() or t in p.name.casefold() for t in wanted)]
    return chosen
