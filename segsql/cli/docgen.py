"""Generate docs/: cli.md (from --help), templating.md (builtin docstrings), metrics.md,
methods.md and config.md (the segsql.yml models).

Run `python -m segsql.cli.docgen`; tests/test_docs.py fails when the files are out of date.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

from segsql import formats

DOCS = Path(__file__).resolve().parents[2] / "docs"


def cli_reference() -> str:
    from segsql.cli import cli

    lines = ["# segsql command line", "", "Generated from `--help` by `make docs`; do not edit.", ""]
    width: dict[str, Any] = {"terminal_width": 100, "max_content_width": 100, "resilient_parsing": True}
    context = cli.make_context("segsql", [], **width)
    lines += ["```", cli.get_help(context).rstrip(), "```", ""]
    for name in sorted(cli.list_commands(context)):
        command = cli.get_command(context, name)
        assert command is not None
        sub = command.make_context(name, [], parent=context, **width)  # the parent adds "segsql"
        lines += [f"## segsql {name}", "", "```", command.get_help(sub).rstrip(), "```", ""]
    return "\n".join(lines)


def templating_reference() -> str:
    from segsql.compile.builtins import BUILTINS

    lines = [
        "# Template reference", "",
        "Generated from the docstrings in `segsql/compile/builtins.py` by `make docs`; do not edit.", "",
        "Segments are Jinja templates rendered in a sandbox with undefined names as errors.",
        "`{{ value }}` prints a Python value (var, param, string, number, date, list) as a SQL",
        "literal; only these helpers and your own macros print SQL. `as_of` is the evaluation",
        "date (default today; `--as-of` overrides it).", "",
    ]
    for name, function in BUILTINS.items():
        signature = _signature(function)
        doc = inspect.cleandoc(function.__doc__ or "").replace("\n", " ")
        lines += [f"## `{name}{signature}`", "", doc, ""]
    return "\n".join(lines)


def _signature(function: object) -> str:
    """`name(a, b=1, *names)` without annotations; a required-looking sentinel shows as bare."""
    parts = []
    for parameter in inspect.signature(function).parameters.values():  # type: ignore[arg-type]
        if parameter.kind is parameter.VAR_POSITIONAL:
            parts.append(f"*{parameter.name}")
        elif parameter.kind is parameter.VAR_KEYWORD:
            parts.append(f"**{parameter.name}")
        elif parameter.default is parameter.empty:
            parts.append(parameter.name)
        elif type(parameter.default) is object:  # the "no default given" sentinel: optional
            parts.append(f"[{parameter.name}]")
        else:
            parts.append(f"{parameter.name}={parameter.default!r}")
    return f"({', '.join(parts)})"


def metrics_reference() -> str:
    """The starter KPIs: definition, kind, period and formula, from segsql/starter/metrics.yml."""
    from importlib import resources

    import yaml

    text = resources.files("segsql").joinpath("starter", "metrics.yml").read_text(encoding="utf-8")
    metrics = yaml.safe_load(text)["metrics"]
    lines = [
        "# Starter metrics", "",
        "Generated from `segsql/starter/metrics.yml` by `make docs`; do not edit.", "",
        "Each metric is one row per entity with a numerator and a denominator, summed per segment in",
        "the engine. Periods end at `as_of`: `month_start(0)` is the month of `as_of`, `month_start(1)`",
        "the month before. How each kind is compared, and when each test is chosen, is at the end",
        "(from `segsql/measure/stats.py`); every compare and readout row names the test it used.", "",
    ]
    for name, spec in metrics.items():
        description = " ".join(spec.get("description", "").split())
        lines += [f"## `{name}` ({spec['entity']}, {spec['kind']})", "", description, "",
                  f"- period: {spec.get('period', '')}", f"- source: `{spec['source']}`"]
        if spec.get("where"):
            lines.append(f"- rows: `{' '.join(spec['where'].split())}`")
        lines += [f"- numerator per entity: `{' '.join(spec['numerator'].split())}`",
                  f"- denominator per entity: `{' '.join(str(spec.get('denominator', '1')).split())}`",
                  f"- shown as: {formats.display_kind(spec['kind'], spec.get('unit', ''))}", ""]
    return "\n".join([*lines, *_tests_section()])


def _tests_section() -> list[str]:
    """The choice of tests, from the stats module's docstring (the code's own definition)."""
    from segsql.measure import stats

    text = (stats.__doc__ or "").strip()
    return ["## How segments are compared", "", "```", text, "```", ""]


METHOD_PAGES = [
    ("Splits and holdouts: `{{ split(...) }}`", "segsql.compile.splits", "segsql readout NAME --metrics m1,m2"),
    ("Experiment readout", "segsql.methods.readout", "project.readout(name, metrics, cuped=True, start='2026-11-01')"),
    ("CUPED: readouts adjusted by the pre-period", "segsql.measure.cuped",
     "segsql readout NAME --metrics m1,m2 --cuped --start DATE"),
    ("Experiment design: power and minimum detectable effect", "segsql.methods.design",
     "segsql power NAME --metric M [--shares control=50,treatment=50] [--effect X | --lift 0.05]"),
    ("Power and sample-size formulas", "segsql.measure.power", "project.power(name, metric, alpha=0.05, power=0.8)"),
    ("RFM: `{{ rfm(...) }}`", "segsql.compile.rfm", "segsql rfm-segments --entity E --source S --at COL --amount COL"),
    ("Cohort retention", "segsql.methods.cohorts", "project.cohorts(entity, source, at, period='month', revenue=...)"),
    ("Segment profiles (personas)", "segsql.methods.personas", "project.profile(name)"),
    ("Clusters as readable SQL rules", "segsql.methods.clustering", "segsql clusters FEATURES [--k 2-6] [--write]"),
    ("Predictive segments (propensity)", "segsql.methods.propensity",
     "segsql propensity FEATURES --outcome SEG --train-as-of D --horizon DAYS [--write NAME]"),
]


def methods_reference() -> str:
    """docs/methods.md: each method's definitions, from its module docstring."""
    import importlib

    lines = ["# Analysis methods", "",
             "Generated from the docstrings in `segsql/methods/` (and the statistics in `segsql/measure/` they",
             "use) by `make docs`; do not edit. Every method runs",
             "in the engine (DuckDB, Postgres, Spark; tests compare their results across the three) and is",
             "shown in `examples/analysis_methods.ipynb`.", ""]
    for title, module_name, usage in METHOD_PAGES:
        module = importlib.import_module(module_name)
        lines += [f"## {title}", "", f"`{usage}`", "", "```text", (module.__doc__ or "").strip(), "```", ""]
    return "\n".join(lines)


def config_reference() -> str:
    """docs/config.md: every key of segsql.yml, from the pydantic models that validate it."""
    from segsql.config import models

    lines = ["# segsql.yml reference", "",
             "Generated from the models in `segsql/config/models.py` by `make docs`; do not edit. Unknown keys",
             "are errors located at their line.", ""]
    pending: list[type[Any]] = [models.ProjectConfig]
    seen: set[type[Any]] = set()
    while pending:
        model = pending.pop(0)
        if model in seen:
            continue
        seen.add(model)
        lines += [f"## {_section(model)}", "", " ".join((model.__doc__ or "").split()), "",
                  "| key | type | default | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            lines.append(f"| `{field.alias or name}` | {_type_text(field.annotation)} | {_default_text(field)} | "
                         f"{field.description or ''} |")
            pending.extend(_nested_models(field.annotation, models.Strict))
        lines.append("")
    return "\n".join(lines)


def _section(model: type[Any]) -> str:
    return "Top level" if model.__name__ == "ProjectConfig" else f"`{model.__name__}`"


def _type_text(annotation: Any) -> str:
    import re

    text = str(annotation).replace("typing.", "").replace("segsql.config.models.", "")
    text = re.sub(r"<class '([\w.]+)'>", lambda m: m.group(1).rsplit(".", 1)[-1], text)
    text = re.sub(r"Annotated\[(.*), FieldInfo\(.*?\)\]", r"\1", text)
    return text.replace("|", "\\|")


def _default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        if hasattr(value, "model_dump"):
            return "see below"
        return "(empty)" if value in ({}, [], None) else f"`{value!r}`"
    return f"`{field.default!r}`"


def _nested_models(annotation: Any, base: type[Any]) -> list[type[Any]]:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, base):
        return [annotation]
    return [model for argument in typing.get_args(annotation) for model in _nested_models(argument, base)]


GENERATED = {"cli.md": cli_reference, "templating.md": templating_reference, "metrics.md": metrics_reference,
             "methods.md": methods_reference, "config.md": config_reference}


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    for filename, build in GENERATED.items():
        (DOCS / filename).write_text(build(), encoding="utf-8")
        sys.stdout.write(f"wrote docs/{filename}\n")


if __name__ == "__main__":
    main()
