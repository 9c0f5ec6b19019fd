"""The HTML the run report and the run comparison share: page shell, CSS, sortable/filterable tables.

Pages are self-contained: CSS and a few lines of JavaScript are inline, images are base64 PNGs,
nothing is fetched. Layout rules that keep a page within a 1280 px window: the body is at most
1240 px wide, tables use ``table-layout: fixed`` with explicit column widths, every cell wraps
long words, and long texts sit in ``<details>``.

Tables with class ``sortable`` sort by a click on a header that has ``data-sort`` (numbers from each
cell's ``data-value``, text otherwise; empty values last). In a table with class ``grouped`` each
``<tbody>`` is one item (a row of cells and a full-width row of details under it) and moves as one.
A ``<form data-filters="TABLE_ID">`` filters that table's rows (or groups): a ``<select data-attr="X">`` keeps rows whose ``data-X`` holds the chosen token (``*``:
any token), ``<select name="metric">`` with ``<input name="max">`` keeps rows whose cell
``data-col=METRIC`` has a value <= max, ``<input name="q">`` matches the row's text. An element with
``data-set="NAME=VALUE"`` sets that control of the filter form and applies it.
"""

from __future__ import annotations

import html
from typing import Any, Iterable, Mapping, Sequence

e = html.escape

CSS = """*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1240px;margin:1.5em auto;padding:0 16px;color:#222;line-height:1.4}
h1{font-size:1.6em;margin:.2em 0}h2{margin-top:1.6em;border-bottom:1px solid #e3e3e3;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;width:100%;table-layout:fixed}
td,th{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left;overflow-wrap:anywhere;word-break:normal}
th{background:#f4f4f4;font-weight:600;font-size:92%;overflow-wrap:normal;word-break:normal;hyphens:none}
th[data-sort]{cursor:pointer;user-select:none}th[data-sort]::after{content:" \\2195";color:#999;font-weight:normal;font-size:85%}
th[aria-sort=ascending]::after{content:" \\25B2";color:#333}th[aria-sort=descending]::after{content:" \\25BC";color:#333}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#666;font-size:90%}.small{font-size:85%}
img{max-width:100%;height:auto;display:block;margin:.4em 0}
details>summary{cursor:pointer;color:#1f5fa8}details[open]>summary{margin-bottom:.3em}
ul.flat{margin:0;padding-left:1.1em}ul.flat li{margin:.1em 0}
.tag{display:inline-block;padding:0 .45em;border-radius:.7em;font-size:85%;white-space:nowrap}
.tag.failed,.tag.broke,.tag.worse{background:#fde2e1;color:#9b1c1c}.tag.error{background:#9b1c1c;color:#fff}
.tag.passed,.tag.fixed,.tag.better{background:#def7ec;color:#03543f}.tag.correct_abstention{background:#e1effe;color:#1e429f}
.tag.changed,.tag.same{background:#eee;color:#333}
.reason{margin:.1em 0}.reason b{font-weight:600}
.warn{border:2px solid #d97706;background:#fffbeb;padding:.6em 1em;border-radius:6px;margin:1em 0}
.warn h2{margin-top:0;border:0;color:#92400e}
tr.nc td{color:#777;background:#fafafa}
form.filters{display:flex;flex-wrap:wrap;gap:.5em 1em;align-items:center;background:#f7f7f7;padding:.5em .7em;border-radius:6px}
form.filters label{font-size:90%}form.filters input[name=max]{width:5em}
.warning{background:#fff3cd;padding:6px 10px;border-left:4px solid #e0a800}
.count{font-size:90%;color:#444}.ok{color:#03543f}.bad{color:#9b1c1c}
table.grouped tr.more td{border-top:0;padding-top:0;background:#fcfcfc}table.grouped tbody{border-bottom:2px solid #ddd}
.cols{display:grid;grid-template-columns:minmax(0,5fr) minmax(0,2fr) minmax(0,3fr);gap:1em;margin:.3em 0 .6em}
.cols.two{grid-template-columns:minmax(0,1fr) minmax(0,1fr)}.cols p{margin:.2em 0 .5em}"""

JS = """(function(){
function items(t){return t.classList.contains('grouped')?Array.prototype.slice.call(t.tBodies):Array.prototype.slice.call(t.tBodies[0].rows);}
function first(it){return it.tagName==='TBODY'?it.rows[0]:it;}
function val(td){var v=td.getAttribute('data-value');if(v===null)return td.textContent.trim().toLowerCase();return v===''?null:parseFloat(v);}
document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('th[data-sort]').forEach(function(th){th.addEventListener('click',function(){
  var i=Array.prototype.indexOf.call(th.parentNode.children,th),dir=th.getAttribute('aria-sort')==='ascending'?-1:1;
  t.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort');});
  th.setAttribute('aria-sort',dir===1?'ascending':'descending');
  var list=items(t),parent=list.length?list[0].parentNode:null;
  list.sort(function(a,b){var x=val(first(a).cells[i]),y=val(first(b).cells[i]);if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;return (x<y?-1:x>y?1:0)*dir;});
  list.forEach(function(r){parent.appendChild(r);});});});});
document.querySelectorAll('form[data-filters]').forEach(function(f){
 var t=document.getElementById(f.getAttribute('data-filters')),out=f.querySelector('.count');
 function apply(){var shown=0,list=items(t);
  list.forEach(function(r){var ok=true;
   f.querySelectorAll('select[data-attr]').forEach(function(s){if(!s.value)return;var have=' '+(r.getAttribute('data-'+s.getAttribute('data-attr'))||'')+' ';
    ok=ok&&(s.value==='*'?have.trim()!=='':have.indexOf(' '+s.value+' ')>=0);});
   var m=f.elements.metric,mx=f.elements.max;
   if(m&&m.value&&mx&&mx.value!==''){var c=r.querySelector('[data-col="'+m.value+'"]'),v=c?c.getAttribute('data-value'):'';ok=ok&&v!==''&&v!==null&&parseFloat(v)<=parseFloat(mx.value);}
   var q=f.elements.q;if(q&&q.value)ok=ok&&r.textContent.toLowerCase().indexOf(q.value.toLowerCase())>=0;
   r.hidden=!ok;if(ok)shown++;});
  if(out)out.textContent='showing '+shown+' of '+list.length;}
 f.addEventListener('input',apply);f.addEventListener('change',apply);f.addEventListener('submit',function(ev){ev.preventDefault();});
 document.querySelectorAll('[data-set]').forEach(function(a){a.addEventListener('click',function(){
  var kv=a.getAttribute('data-set').split('=');if(f.elements[kv[0]]){f.elements[kv[0]].value=kv[1];apply();}});});
 apply();});
})();"""


def page(title: str, body: Iterable[str]) -> str:
    """A complete, self-contained HTML document."""
    return "\n".join([
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{e(title)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>", *body, f"<script>{JS}</script></body></html>",
    ])


def fmt(value: Any, key: str = "") -> str:
    """A metric value as a report shows it."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if key.endswith("_s"):
        return f"{value:.2f} s"
    if key == "answer_words":
        return f"{value:.0f}"
    return f"{value:.3f}"


def num_cell(value: Any, key: str, *, col: str | None = None, title: str | None = None, suffix: str = "") -> str:
    """A right-aligned numeric cell carrying its raw value for sorting and filtering."""
    raw = "" if value is None else (f"{float(value):.6g}" if not isinstance(value, bool) else str(int(value)))
    attrs = f" data-col='{e(col)}'" if col else ""
    attrs += f" title='{e(title)}'" if title else ""
    extra = f"<br><span class='small muted'>{e(suffix.strip())}</span>" if suffix else ""
    return f"<td class='num' data-value='{raw}'{attrs}>{e(fmt(value, key))}{extra}</td>"


def colgroup(widths: Sequence[str]) -> str:
    return "<colgroup>" + "".join(f"<col style='width:{w}'>" for w in widths) + "</colgroup>"


def header(columns: Sequence[tuple[str, bool, bool]]) -> str:
    """``<thead>`` from ``(label, sortable, numeric)`` columns."""
    cells = []
    for label, sortable, numeric in columns:
        attrs = " data-sort" if sortable else ""
        attrs += " class='num'" if numeric else ""
        cells.append(f"<th{attrs}>{e(label)}</th>")
    return "<thead><tr>" + "".join(cells) + "</tr></thead>"


def tag(kind: str, label: str) -> str:
    return f"<span class='tag {e(kind)}'>{e(label)}</span>"


def details(summary: str, content_html: str) -> str:
    return f"<details><summary>{e(summary)}</summary>{content_html}</details>"


def snippet(text: str, n: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def select(attr: str, label: str, options: Mapping[str, str], *, name: str | None = None) -> str:
    """A filter ``<select>`` over rows' ``data-{attr}`` tokens (first option: no filter)."""
    opts = "".join(f"<option value='{e(v)}'>{e(t)}</option>" for v, t in options.items())
    return f"<label>{e(label)} <select name='{e(name or attr)}' data-attr='{e(attr)}'><option value=''>all</option>{opts}</select></label>"


def metric_filter(options: Mapping[str, str]) -> str:
    opts = "".join(f"<option value='{e(v)}'>{e(t)}</option>" for v, t in options.items())
    return (f"<label>metric <select name='metric'><option value=''>any</option>{opts}</select></label>"
            "<label>at most <input name='max' type='number' step='0.05' min='0' placeholder='e.g. 0.5'></label>")


def filter_form(table_id: str, controls: Iterable[str]) -> str:
    return (f"<form class='filters' data-filters='{e(table_id)}'>" + "".join(controls)
            + "<label>text <input name='q' type='search' placeholder='question, answer, file…'></label>"
            "<span class='count'></span></form>")
