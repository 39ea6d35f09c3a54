"""deploy/prometheus and deploy/grafana: the alert rules are valid and fire when they should
(promtool, from the machine's `prometheus` package), every dashboard is well formed, every
query names metrics the services really expose, and every metric they expose is watched by a
dashboard panel or a rule.

The exposed metrics are built the way the services build them (the runtime's registry plus
the request-api's progress metrics), with no stack running; `tests/e2e/test_metrics.py` checks
the live `/metrics` pages.

PromQL is read by the small lexer below (no PromQL parser is among the workspace's
dependencies); promtool parses every dashboard query too, so the lexer only ever meets valid
PromQL.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from tests.e2e.test_metrics import REQUEST_FAMILIES, RUNTIME_FAMILIES

from events.metrics import RuntimeMetrics
from events.topics import SERVICES
from request_api.progress import ProgressMetrics

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TESTS = sorted((RULES_DIR / "tests").glob("*.yml"))
RUNBOOK = PROMETHEUS_DIR / "runbook.md"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD_FILES = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
DATASOURCE_FILES = sorted((GRAFANA_DIR / "provisioning" / "datasources").glob("*.yaml"))

# Series Prometheus itself adds: per scrape target, and for alerting rules.
SYNTHESISED = {
    "up": set(),
    "scrape_duration_seconds": set(),
    "scrape_samples_scraped": set(),
    "scrape_samples_post_metric_relabeling": set(),
    "scrape_series_added": set(),
    "ALERTS": {"alertname", "alertstate"},
    "ALERTS_FOR_STATE": {"alertname"},
}
# Labels Prometheus attaches to every scraped series (deploy/prometheus/prometheus.yml).
TARGET_LABELS = {"job", "instance", "service"}
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}
# What Grafana puts in place of its built-in variables, for promtool.
GRAFANA_BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
SEVERITIES = {"critical", "warning"}


# ---------------------------------------------------------------- what the services expose


@dataclass(frozen=True)
class Family:
    name: str
    kind: str
    labels: frozenset[str]

    @property
    def sample_names(self) -> set[str]:
        return {self.name + suffix for suffix in SAMPLE_SUFFIXES[self.kind]}


def metric_objects(*holders: RuntimeMetrics | ProgressMetrics) -> Iterator[MetricWrapperBase]:
    for holder in holders:
        for holder_field in dataclasses.fields(holder):
            value = getattr(holder, holder_field.name)
            if isinstance(value, MetricWrapperBase):
                yield value


def exposed_families() -> dict[str, Family]:
    """Every family a service's `/metrics` can show: what `ServiceRuntime` registers, plus
    what the request-api adds to the same registry (`request_api.app.create_app`)."""
    runtime = RuntimeMetrics.create()
    progress = ProgressMetrics.create(runtime.registry)
    labels = {
        # Label names are not public on prometheus_client's metric objects.
        metric._name: frozenset(metric._labelnames)
        for metric in metric_objects(runtime, progress)
    }
    # A collector that is no metric object (a process collector) has no labels to declare.
    families = {
        family.name: Family(family.name, family.type, labels.get(family.name, frozenset()))
        for family in runtime.registry.collect()
    }
    assert set(labels) <= set(families)
    return families


def exposed_sample_names() -> dict[str, Family]:
    return {name: family for family in exposed_families().values() for name in family.sample_names}


# ---------------------------------------------------------------- PromQL, as far as needed

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    | (?P<number>0[xX][0-9a-fA-F]+
        |(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]@:])
    """,
    re.VERBOSE,
)
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
_MATCH_OPS = {"=", "!=", "=~", "!~"}
# `$name`, `${name}` or `${name:format}`; `$1` in label_replace() is no variable.
_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)")


@dataclass
class Query:
    """The vector selectors of a PromQL expression and the labels it groups or matches by."""

    selectors: list[tuple[str, set[str]]] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.selectors}


def tokens(expr: str) -> list[tuple[str, str]]:
    found, position = [], 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        assert match, f"cannot read {expr[position:]!r} in {expr!r}"
        assert match.lastgroup is not None
        if match.lastgroup != "space":
            found.append((match.lastgroup, match.group()))
        position = match.end()
    return found


def read_promql(expr: str) -> Query:
    query = Query()
    items = tokens(expr)
    index = 0

    def matchers(start: int) -> tuple[set[str], str | None, int]:
        """The label names inside `{...}` from `start` (its `{`), the `__name__` it asks
        for, and the index after its `}`."""
        labels, name, at = set(), None, start + 1
        while items[at][1] != "}":
            kind, text = items[at]
            if kind == "ident" and items[at + 1][1] in _MATCH_OPS:
                value = items[at + 2][1][1:-1]
                if text == "__name__":
                    name = value
                else:
                    labels.add(text)
                at += 3
            else:
                at += 1
        return labels, name, at + 1

    while index < len(items):
        kind, text = items[index]
        following = items[index + 1][1] if index + 1 < len(items) else ""
        if text == "[":
            index = next(at for at in range(index, len(items)) if items[at][1] == "]") + 1
        elif text == "{":
            labels, name, index = matchers(index)
            assert name, f"a selector without a metric name in {expr!r}"
            query.selectors.append((name, labels))
        elif kind == "ident" and text in _GROUPING:
            index += 1
            if following == "(":
                close = next(at for at in range(index, len(items)) if items[at][1] == ")")
                query.grouping |= {t for k, t in items[index + 1 : close] if k == "ident"}
                index = close + 1
        elif kind == "ident" and text.lower() in _KEYWORDS:
            index += 1
        elif kind == "ident" and following in {"(", "by", "without"}:
            index += 1  # a function, or an aggregation (`sum by (le) (...)`)
        elif kind == "ident":
            labels = set()
            index += 1
            if following == "{":
                labels, _, index = matchers(index)
            query.selectors.append((text, labels))
        else:
            index += 1
    return query


def grafana_variables(text: str) -> set[str]:
    return {braced or bare for braced, bare in _VARIABLE.findall(text)}


def without_grafana_variables(text: str) -> str:
    """The query as Prometheus receives it, more or less: durations for the built-ins, `x`
    for the dashboard's own variables (which only ever stand in label values)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return GRAFANA_BUILTINS.get(name, "x")

    return _VARIABLE.sub(value, text)


# ---------------------------------------------------------------- the files under test


def load_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in load_rules() if "alert" in rule]


def recording_rules() -> dict[str, str]:
    return {rule["record"]: rule["expr"] for rule in load_rules() if "record" in rule}


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in DASHBOARD_FILES}


def datasources() -> dict[str, str]:
    """Provisioned datasources: uid → type."""
    return {
        source["uid"]: source["type"]
        for path in DATASOURCE_FILES
        for source in yaml.safe_load(path.read_text())["datasources"]
    }


@dataclass(frozen=True)
class DashboardQuery:
    where: str
    expr: str  # PromQL, Grafana's variables still in
    variables_defined: frozenset[str]


def template_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    text: str = query["query"] if isinstance(query, dict) else query
    return text


def label_values_selector(text: str) -> str:
    """`label_values(metric{...}, label)` is Grafana's, not PromQL: its selector is."""
    match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", text.strip(), re.DOTALL)
    assert match, f"only label_values(selector, label) variables are expected: {text!r}"
    return match.group(1)


def dashboard_queries() -> Iterator[DashboardQuery]:
    for file, board in load_dashboards().items():
        variables = board.get("templating", {}).get("list", [])
        defined = frozenset({v["name"] for v in variables} | set(GRAFANA_BUILTINS))
        for variable in variables:
            yield DashboardQuery(
                f"{file} variable {variable['name']}",
                label_values_selector(template_query(variable)),
                defined,
            )
        for annotation in board.get("annotations", {}).get("list", []):
            if annotation.get("datasource", {}).get("type") == "prometheus":
                yield DashboardQuery(
                    f"{file} annotation {annotation['name']}", annotation["expr"], defined
                )
        for panel in board["panels"]:
            for target in panel["targets"]:
                if target["datasource"]["type"] == "prometheus":
                    yield DashboardQuery(
                        f"{file} panel {panel['title']!r} {target['refId']}",
                        target["expr"],
                        defined,
                    )


def every_query() -> Iterator[tuple[str, Query]]:
    """Every PromQL expression of the dashboards and the rules, read."""
    for dashboard_query in dashboard_queries():
        yield dashboard_query.where, read_promql(without_grafana_variables(dashboard_query.expr))
    for rule in load_rules():
        yield rule.get("alert") or rule["record"], read_promql(rule["expr"])


def promtool(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    program = shutil.which("promtool")
    assert program, "promtool is missing: `apt-get install prometheus` (.ci/run installs it)"
    return subprocess.run(
        [program, *map(str, arguments)], capture_output=True, text=True, timeout=120, check=False
    )


# ---------------------------------------------------------------- promtool


def test_rule_files_are_valid() -> None:
    assert RULE_FILES
    checked = promtool("check", "rules", "--lint=all", "--lint-fatal", *RULE_FILES)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_prometheus_configuration_is_valid_with_its_rules() -> None:
    checked = promtool(
        "check", "config", "--lint=all", "--lint-fatal", PROMETHEUS_DIR / "prometheus.yml"
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for path in RULE_FILES:
        assert path.name in checked.stdout, f"prometheus.yml does not load {path.name}"


def test_alerts_fire_on_their_test_series_and_only_there() -> None:
    assert RULE_TESTS
    tested = promtool("test", "rules", *RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_rules_read_recorded_series_of_their_own_group_recorded_before() -> None:
    """Groups are evaluated independently: an alert reading another group's recorded series
    would see last round's value (and promtool's tests would flake on it)."""
    recorded = set(recording_rules())
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            before: set[str] = set()
            for rule in group["rules"]:
                reads = read_promql(rule["expr"]).names & recorded
                assert reads <= before, f"{group['name']}: {rule} reads {reads - before}"
                before.add(rule.get("record", ""))


def test_every_alert_is_tested_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        unit_tests = yaml.safe_load(path.read_text())
        assert {(path.parent / f).resolve() for f in unit_tests["rule_files"]} == set(RULE_FILES)
        for case in unit_tests["tests"]:
            for expectation in case.get("alert_rule_test", []):
                name = expectation["alertname"]
                (firing if expectation.get("exp_alerts") else silent).add(name)
    names = {alert["alert"] for alert in alerts()}
    assert names - firing == set(), "alerts never shown firing"
    assert names - silent == set(), "alerts never shown silent"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as the expression of a recording rule."""
    groups = [
        {
            "name": query.where,
            "rules": [
                {"record": f"dashboard_query_{n}", "expr": without_grafana_variables(query.expr)}
            ],
        }
        for n, query in enumerate(dashboard_queries())
    ]
    assert len({group["name"] for group in groups}) == len(groups)
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": groups}))
    checked = promtool("check", "rules", "--lint=none", rule_file)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(groups)} rules found" in checked.stdout


# ---------------------------------------------------------------- alerts


@pytest.mark.parametrize("alert", alerts(), ids=lambda alert: alert["alert"])
def test_alert_says_how_bad_what_and_where_to_look(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in SEVERITIES
    annotations = alert["annotations"]
    assert {"summary", "description", "runbook", "dashboard"} <= set(annotations)
    runbook_file, _, anchor = annotations["runbook"].partition("#")
    assert (ROOT / runbook_file) == RUNBOOK
    assert anchor == alert["alert"].lower()
    assert f"\n## {alert['alert']}\n" in RUNBOOK.read_text()
    uids = {board["uid"] for board in load_dashboards().values()}
    assert annotations["dashboard"].removeprefix("/d/") in uids


# ---------------------------------------------------------------- dashboards


@pytest.mark.parametrize("file", [path.name for path in DASHBOARD_FILES])
def test_dashboard_is_well_formed(file: str) -> None:
    board = load_dashboards()[file]
    assert board["uid"] and board["title"]
    assert board["panels"]
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
    sources = datasources()
    for panel in board["panels"]:
        title = panel.get("title")
        assert title, f"{file}: a panel without a title"
        uid = panel["datasource"]["uid"]
        assert sources.get(uid) == panel["datasource"]["type"], f"{file} {title}: {uid}"
        assert panel["targets"], f"{file} {title}: no query"
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            if target["datasource"]["type"] == "prometheus":
                assert target["expr"].strip()
            else:
                assert target.get("service") in SERVICES
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24
    for variable in board.get("templating", {}).get("list", []):
        assert sources.get(variable["datasource"]["uid"]) == "prometheus"


def test_dashboards_have_distinct_uids_and_titles() -> None:
    boards = list(load_dashboards().values())
    assert len(boards) == 4
    assert len({board["uid"] for board in boards}) == len(boards)
    assert len({board["title"] for board in boards}) == len(boards)


def test_dashboard_queries_use_only_defined_variables() -> None:
    for query in dashboard_queries():
        undefined = grafana_variables(query.expr) - query.variables_defined
        assert not undefined, f"{query.where}: {undefined}"


# ---------------------------------------------------------------- metric names


def test_every_queried_metric_is_exposed() -> None:
    known = set(exposed_sample_names()) | set(recording_rules()) | set(SYNTHESISED)
    unknown = {(where, name) for where, query in every_query() for name in query.names - known}
    assert not unknown


def test_every_matched_label_exists_on_its_metric() -> None:
    samples = exposed_sample_names()
    recorded = {name: read_promql(expr).grouping for name, expr in recording_rules().items()}
    alert_labels = {label for alert in alerts() for label in alert["labels"]}

    def labels_of(name: str) -> set[str]:
        if name in samples:
            extra = {"le"} if name.endswith("_bucket") else set()
            return set(samples[name].labels) | TARGET_LABELS | extra
        if name in recorded:
            return recorded[name]
        return SYNTHESISED[name] | TARGET_LABELS | alert_labels

    every_label = {
        label for name in [*samples, *recorded, *SYNTHESISED] for label in labels_of(name)
    }
    for where, query in every_query():
        for name, labels in query.selectors:
            assert labels <= labels_of(name), f"{where}: {name} has no {labels - labels_of(name)}"
        assert query.grouping <= every_label, f"{where}: {query.grouping - every_label}"


def test_every_exposed_metric_is_on_a_dashboard_or_in_a_rule() -> None:
    used = {name for _, query in every_query() for name in query.names}
    unwatched = {
        family.name for family in exposed_families().values() if not family.sample_names & used
    }
    assert not unwatched


def test_every_recording_rule_is_used() -> None:
    used = {
        name
        for where, query in every_query()
        for name in query.names
        if where not in recording_rules()
    }
    assert set(recording_rules()) <= used


def test_the_exposed_families_are_the_documented_ones() -> None:
    families = exposed_families()
    # The same families the live services are checked to expose (tests/e2e/test_metrics.py).
    expected = {**RUNTIME_FAMILIES, **REQUEST_FAMILIES}
    assert {name: family.kind for name, family in families.items()} == expected
    assert families["kafka_consumergroup_lag"].labels == {"consumergroup", "topic", "partition"}


def test_metrics_are_registered_only_where_this_test_builds_them() -> None:
    """A metric created anywhere else would be exposed without being checked here."""
    constructors = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}
    creating = set()
    for path in [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]:
        tree = ast.parse(path.read_text())
        imported = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("prometheus_client")
            for alias in node.names
            if alias.name in constructors
        }
        if any(
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in imported
            for node in ast.walk(tree)
        ):
            creating.add(path.relative_to(ROOT).as_posix())
    assert creating == {
        "libs/events/src/events/metrics.py",
        "services/request-api/src/request_api/progress.py",
    }


# ---------------------------------------------------------------- the PromQL reader itself


@pytest.mark.parametrize(
    ("expr", "names", "grouping"),
    [
        ('sum by (le) (rate(a_bucket{x="}", y=~"[a-z]+"}[5m]))', {"a_bucket"}, {"le"}),
        (
            "histogram_quantile(0.9, sum(rate(b_bucket[5m])) by (le, service))",
            {"b_bucket"},
            {"le", "service"},
        ),
        ("c / on (service) group_left (route) d offset 5m", {"c", "d"}, {"service", "route"}),
        ("1e3 * e and f unless g or h > bool 0x1F", {"e", "f", "g", "h"}, set()),
        ('{__name__="i", job="p"}', {"i"}, set()),
        ("max_over_time(j[10m:1m]) @ start()", {"j"}, set()),
        ('count_values("v", k) - label_replace(l, "a", "$1", "b", "(.*)")', {"k", "l"}, set()),
        ("time() - vector(1) + Inf * m:rate5m offset -1h30m", {"m:rate5m"}, set()),
        ("absent(up{job='provisioning'})", {"up"}, set()),
    ],
)
def test_promql_reader_finds_metric_names(expr: str, names: set[str], grouping: set[str]) -> None:
    query = read_promql(expr)
    assert query.names == names
    assert query.grouping == grouping


def test_promql_reader_finds_matched_labels() -> None:
    query = read_promql('rate(a{job="x", status=~"5.."}[5m]) / b{route!="/metrics"}')
    assert query.selectors == [("a", {"job", "status"}), ("b", {"route"})]
