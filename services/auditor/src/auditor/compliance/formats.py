"""Reports as CSV (one section per file) and as one readable HTML page. Whatever a record
says came from an event, so every cell is treated as hostile: escaped for HTML, and kept from
being run as a formula by a spreadsheet that opens the CSV."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

from auditor.compliance.reports import SECTIONS, TITLES, Report

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
HTML_MEDIA_TYPE = "text/html; charset=utf-8"
# A spreadsheet reads a cell starting with one of these as a formula (OWASP: CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin-bottom: 2rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left;
         vertical-align: top; }
th { background: #f2f2f2; }
td.empty { color: #777; font-style: italic; }
dt { font-weight: bold; }
"""


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_of(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(column)) for column in columns])
    return out.getvalue()


def report_csv(report: Report, section: str) -> str:
    return csv_of(SECTIONS[section], report.sections[section])


def html_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return html.escape(str(value), quote=True)


def html_table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    if not rows:
        body = f'<tr><td class="empty" colspan="{len(columns)}">none</td></tr>'
    else:
        body = "\n".join(
            "<tr>" + "".join(f"<td>{html_cell(row.get(c))}</td>" for c in columns) + "</tr>"
            for row in rows
        )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def html_page(
    title: str,
    facts: Sequence[tuple[str, Any]],
    tables: Sequence[tuple[str, Sequence[str], Sequence[Mapping[str, Any]]]],
) -> str:
    """One self-contained page: a title, a list of facts, then a titled table each."""
    listed = "\n".join(f"<dt>{html.escape(k)}</dt><dd>{html_cell(v)}</dd>" for k, v in facts)
    sections = "\n".join(
        f"<h2>{html.escape(heading)}</h2>\n{html_table(columns, rows)}"
        for heading, columns, rows in tables
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n<dl>\n{listed}\n</dl>\n{sections}\n</body>\n</html>\n"
    )


def report_html(report: Report, sections: Sequence[str] | None = None) -> str:
    about = report.to_dict()
    facts = [
        ("Tenant", about["tenant"]),
        ("From", about["from"]),
        ("To", about["to"]),
        ("Records read", about["records_read"]),
        ("Cost rule", about["cost_rule"]),
    ]
    chosen = sections or list(SECTIONS)
    tables = [(TITLES[name], SECTIONS[name], report.sections[name]) for name in chosen]
    return html_page(f"Compliance report: {report.tenant}", facts, tables)
