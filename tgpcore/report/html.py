"""Render a :class:`~tgpcore.report.model.Report` as one self-contained HTML page.

Images are embedded as base64 ``data:`` URIs and the style sheet is inline: the page refers
to nothing outside itself, so it can be mailed, archived and opened offline.
"""

from __future__ import annotations

from html import escape
from typing import Any

from tgpcore.report.gather import fmt
from tgpcore.report.model import Figure, Report, Section, Table
from tgpcore.report.thumbnails import data_uri

STATUS_CLASSES = {"succeeded": "ok", "ok": "ok", "accepted": "ok", "done": "ok",
                  "failed": "bad", "rejected": "bad", "refused": "bad", "no_cluster": "warn",
                  "not_built": "warn", "skipped": "warn", "partial": "warn",
                  "running": "warn", "not run": "muted"}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232a;
 background:#f6f7f9;line-height:1.4}
header{background:#1f3a5f;color:#fff;padding:1em 2em}
header h1{margin:0;font-size:1.4em}header p{margin:.3em 0 0;opacity:.85}
nav{padding:.6em 2em;background:#e7ebf0;font-size:.9em}
nav a{margin-right:1em;color:#1f3a5f;text-decoration:none;white-space:nowrap}
main{padding:0 2em 2em}
section{background:#fff;margin:1.2em 0;padding:.8em 1.2em;border-radius:6px;
 box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:1.15em;margin:.2em 0 .6em}h3{font-size:1em;margin:1em 0 .3em}
.alerts{background:#fff4e5;border-left:4px solid #e69500;padding:.6em 1em;margin:1.2em 0}
.alerts p{margin:.2em 0}
.alarms{background:#fdecea;border-left:4px solid #c62828;padding:.6em 1em;margin:1.2em 0}
.alarms li{margin:.3em 0}
.badge{font-size:.75em;padding:.15em .5em;border-radius:3px;margin-left:.6em;
 vertical-align:middle;font-weight:normal}
.ok{background:#dff3e4;color:#1b6b32}.bad{background:#fde2e1;color:#a01d16}
.warn{background:#fff1d6;color:#8a5a00}.muted{background:#eceff3;color:#5b6570}
.scroll{overflow-x:auto;max-height:36em;overflow-y:auto}
table{border-collapse:collapse;font-size:.82em;margin:.3em 0 .8em}
th,td{border:1px solid #d9dee5;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#eef1f5;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.note{color:#5b6570;font-size:.85em}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:1em}
.figs.wide{grid-template-columns:repeat(auto-fill,minmax(420px,1fr))}
.figs.large{grid-template-columns:repeat(auto-fill,minmax(560px,1fr))}
details{margin:.4em 0}summary{cursor:pointer;color:#1f3a5f;font-size:.9em}
section.science{border-top:4px solid #1f3a5f}
figure{margin:0;text-align:center}figure img{max-width:100%;height:auto;
 border:1px solid #d9dee5;background:#fff}
figcaption{font-size:.8em;color:#5b6570;word-break:break-all}
"""


def _cell(column: str, value: Any) -> str:
    text = escape(fmt(value))
    if column == "status" and isinstance(value, str):
        cls = STATUS_CLASSES.get(value, "muted")
        return f'<td><span class="badge {cls}">{text}</span></td>'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="num">{text}</td>'
    return f"<td>{text}</td>"


def render_table(table: Table) -> str:
    """One table as HTML (title, scrollable body, note)."""
    parts = []
    if table.title:
        parts.append(f"<h3>{escape(table.title)}</h3>")
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(_cell(c, v) for c, v in zip(table.columns, row, strict=False))
                   + "</tr>" for row in table.rows)
    parts.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
                 f"<tbody>{body}</tbody></table></div>")
    if table.note:
        parts.append(f'<p class="note">{escape(table.note)}</p>')
    return "".join(parts)


def render_figure(figure: Figure) -> str:
    """One figure as an ``<img>`` with a base64 data URI."""
    return (f'<figure><img src="{data_uri(figure.png)}" alt="{escape(figure.title)}" '
            f'loading="eager"><figcaption>{escape(figure.title)}'
            + (f"<br>{escape(figure.caption)}" if figure.caption else "")
            + "</figcaption></figure>")


def _anchor(key: str) -> str:
    return "s-" + "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in key)


def render_section(section: Section) -> str:
    """One section as HTML."""
    badge = ""
    if section.stage and section.stage_status:
        cls = STATUS_CLASSES.get(section.stage_status, "muted")
        badge = (f'<span class="badge {cls}">stage {escape(section.stage)}: '
                 f"{escape(section.stage_status.replace('_', ' '))}</span>")
    cls = ' class="science"' if section.key.startswith(("science", "night")) else ""
    parts = [f'<section id="{_anchor(section.key)}"{cls}><h2>{escape(section.title)}{badge}'
             "</h2>"]
    parts += [f"<p>{escape(n)}</p>" for n in section.notes]
    tables = "".join(render_table(t) for t in section.tables)
    if tables and section.folded:
        n = len(section.tables)
        tables = (f"<details><summary>{n} table{'s' if n != 1 else ''} (click to open)"
                  f"</summary>{tables}</details>")
    parts.append(tables)
    if section.figures:
        size = (" large" if section.large_figures else
                " wide" if section.key.startswith(("membership", "fit", "other")) else "")
        parts.append(f'<div class="figs{size}">'
                     + "".join(render_figure(f) for f in section.figures) + "</div>")
    parts.append("</section>")
    return "".join(parts)


def render_html(report: Report) -> str:
    """The whole report as one self-contained HTML document.

    Parameters
    ----------
    report : Report

    Returns
    -------
    str
        HTML5 with inline CSS and embedded images; no scripts and no external references.
    """
    nav = "".join(f'<a href="#{_anchor(s.key)}">{escape(s.title)}</a>' for s in report.sections)
    alerts = ""
    if report.alerts:
        alerts = ('<div class="alerts"><strong>Not everything was built.</strong>'
                  + "".join(f"<p>{escape(a)}</p>" for a in report.alerts) + "</div>")
    if report.alarms:
        alerts = ('<div class="alarms"><strong>Alarms: read these before the science.'
                  '</strong><ul>'
                  + "".join(f'<li><b>{escape(a["level"])}</b> [{escape(a["stage"])}] '
                            f'{escape(str(a["subject"]))}: {escape(a["message"])}'
                            f'<br><small>{escape(a.get("reason", ""))}</small></li>'
                            for a in report.alarms) + "</ul></div>" + alerts)
    body = "".join(render_section(s) for s in report.sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(report.title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{escape(report.title)}</h1><p>generated {escape(report.generated_at)}"
            f" by tgp</p></header><nav>{nav}</nav><main>{alerts}{body}</main></body></html>\n")
