"""Write an `EvaluationReport` as JSON, a Markdown summary and one self-contained HTML file.

The HTML needs nothing but itself: CSS is inline, every plot is a matplotlib figure embedded
as a base64 PNG (`data:` URI), and no script or font is fetched. It can be attached to a
ticket, mailed to a regulator or opened offline. Every text that comes from data (items,
category and group names, other modules' results) goes through `html.escape`.

matplotlib is imported lazily with the Agg backend, so importing this module (and the JSON
and Markdown writers) costs nothing and needs no display.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from warden.evaluate.metrics import CategoryReport, Estimate
from warden.evaluate.report import EvaluationReport, section_dict

#: Groups drawn per bar chart (the largest ones).
MAX_GROUP_BARS = 20
#: Groups smaller than this are not drawn (their rates are noise).
MIN_GROUP_ITEMS = 10


# -- formatting -----------------------------------------------------------------------------

def _f(x: float | None, d: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def _est(e: Estimate | None, d: int = 3) -> str:
    return "–" if e is None else (e.format(d) if e.defined else "undefined")


def summary_rows(report: EvaluationReport) -> list[list[str]]:
    """One row per category: the figures of the summary table (Markdown, HTML, console)."""
    rows = []
    for cat, r in report.categories.items():
        if not r.measured:
            rows.append([cat, "UNMEASURED", str(r.n), str(r.positives), _f(r.prevalence), "–", "–", "–",
                         _f(report.thresholds.get(cat), 2), "–", "–", "–", "–"])
            continue
        at = r.at_threshold
        assert at is not None
        rows.append([cat, "measured", str(r.n), str(r.positives), _f(r.prevalence), _est(r.pr_auc), _est(r.roc_auc),
                     _est(r.ece), _f(at.threshold, 2), _est(at.precision), _est(at.recall), _est(at.f1),
                     _est(at.fpr, 4)])
    return rows


SUMMARY_HEADER = ["category", "status", "n", "pos", "prevalence", "PR-AUC [95% CI]", "ROC-AUC [95% CI]",
                  "ECE [95% CI]", "threshold", "precision", "recall", "F1", "FPR"]


# -- JSON and Markdown ----------------------------------------------------------------------

def write_json(report: EvaluationReport, path: Path) -> Path:
    path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n",
                    encoding="utf-8")
    return path


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: EvaluationReport) -> str:
    m = report.meta
    out = [f"# {m.title}", ""]
    facts = [("dataset", m.dataset), ("split", m.split), ("policy", _policy_label(report)), ("surface", m.surface),
             ("items", str(report.n_items)), ("created", m.created)]
    out += [f"- **{k}**: {_md_cell(str(v))}" for k, v in facts if v]
    out += [f"- {_md_cell(n)}" for n in m.notes]
    out += ["", "## Metrics per category", "",
            "Figures at the policy's flag threshold (flagged = score >= threshold) and across thresholds; "
            "95% stratified bootstrap intervals in brackets.", ""]
    out.append("| " + " | ".join(SUMMARY_HEADER) + " |")
    out.append("|" + "---|" * len(SUMMARY_HEADER))
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in summary_rows(report)]
    if report.unmeasured:
        out += ["", "## Unmeasured categories", ""]
        out += [f"- **{c}**: {report.categories[c].reason} (n={report.categories[c].n}, "
                f"{report.categories[c].positives} positives)" for c in report.unmeasured]
    if report.comparison:
        out += ["", "## Champion vs candidate", ""]
        out += [f"- **{c}**: {getattr(r, 'summary', '')}" for c, r in report.comparison.items()]
    out += ["", "## Other sections", ""]
    for name, value in (("fairness", report.fairness), ("robustness", report.robustness)):
        if value is None:
            why = report.missing_sections.get(name, "not run")
            out.append(f"- **{name}**: not included ({why})")
        else:
            out.append(f"- **{name}**: included (see report.html / report.json)")
    return "\n".join(out) + "\n"


def _policy_label(report: EvaluationReport) -> str | None:
    m = report.meta
    if not m.policy_name:
        return None
    return f"{m.policy_name} {m.policy_version}" if m.policy_version else m.policy_name


# -- figures --------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def category_figure(report: EvaluationReport, cat: str) -> str:
    """PR curve, ROC curve, reliability diagram and precision/recall vs threshold for one
    measured category, as one base64 PNG."""
    plt = _plt()
    r = report.categories[cat]
    curve = report.curves[cat]
    thr = report.thresholds[cat]
    with np.errstate(divide="ignore", invalid="ignore"):
        prec, rec, fpr = curve.precision, curve.recall, curve.fpr
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    # PR: from (recall 0, precision 1) along the thresholds, highest first
    ax = axes[0]
    ax.step(np.concatenate([[0.0], rec]), np.concatenate([[1.0], prec]), where="post", color="C0")
    ax.axhline(r.prevalence, color="grey", ls=":", lw=1, label=f"prevalence {r.prevalence:.3f}")
    at = r.at_threshold
    if at is not None and at.precision.defined and at.recall.defined:
        ax.plot([at.recall.value], [at.precision.value], "o", color="C3", label=f"policy threshold {thr:g}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
           title=f"PR curve (AP {_f(r.pr_auc.value if r.pr_auc else None)})")
    ax.legend(loc="lower left", fontsize=8)
    # ROC
    ax = axes[1]
    ax.plot(np.concatenate([[0.0], fpr]), np.concatenate([[0.0], rec]), color="C0")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    if at is not None and at.fpr.defined and at.recall.defined:
        ax.plot([at.fpr.value], [at.recall.value], "o", color="C3", label=f"policy threshold {thr:g}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false positive rate", ylabel="true positive rate",
           title=f"ROC (AUC {_f(r.roc_auc.value if r.roc_auc else None)})")
    # reliability
    ax = axes[2]
    rel = r.reliability
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="perfect calibration")
    if rel is not None:
        ms = np.array(rel.mean_score, dtype=float)
        fp_ = np.array(rel.fraction_positive, dtype=float)
        ok = ~np.isnan(ms)
        ax.plot(ms[ok], fp_[ok], "o-", color="C0", label="model")
        edges = np.array(rel.bin_edges)
        ax2 = ax.twinx()
        ax2.bar((edges[:-1] + edges[1:]) / 2, rel.counts, width=np.diff(edges) * 0.9, color="C0", alpha=0.12)
        ax2.set_yscale("symlog")
        ax2.set_ylabel("items per bin", fontsize=8)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="mean score in bin", ylabel="fraction positive",
           title=f"Calibration (ECE {_f(r.ece.value if r.ece else None)})")
    ax.legend(loc="upper left", fontsize=8)
    # precision / recall vs threshold
    ax = axes[3]
    ax.plot(curve.thresholds, prec, color="C0", label="precision")
    ax.plot(curve.thresholds, rec, color="C1", label="recall")
    ax.axvline(thr, color="C3", ls="--", lw=1.2, label=f"policy threshold {thr:g}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="threshold (flag if score >= t)", title="Threshold curve")
    ax.legend(loc="lower left", fontsize=8)
    fig.suptitle(cat, fontsize=11)
    fig.tight_layout()
    return _png(fig)


def group_figure(cat: str, column: str, rates: Sequence[Any]) -> str | None:
    """Per-group FPR and FNR bars at the threshold; None when fewer than 2 groups are large enough."""
    shown = sorted([g for g in rates if g.n >= MIN_GROUP_ITEMS], key=lambda g: -g.n)[:MAX_GROUP_BARS]
    if len(shown) < 2:
        return None
    shown.sort(key=lambda g: g.group)
    plt = _plt()
    x = np.arange(len(shown))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(shown) + 2), 3.4))
    fprs = [0.0 if math.isnan(g.fpr) else g.fpr for g in shown]
    fnrs = [0.0 if math.isnan(g.fnr) else g.fnr for g in shown]
    ax.bar(x - 0.2, fprs, width=0.4, label="FPR", color="C3")
    ax.bar(x + 0.2, fnrs, width=0.4, label="FNR", color="C0")
    ax.set_xticks(x, [f"{g.group[:18]} (n={g.n})" for g in shown], rotation=45, ha="right", fontsize=7)
    ax.set(ylim=(0, 1), ylabel="rate at threshold", title=f"{cat}: error rates by {column}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def overview_figure(report: EvaluationReport) -> str | None:
    cats = report.measured
    if not cats:
        return None
    plt = _plt()
    vals = [report.categories[c].pr_auc for c in cats]
    y = np.arange(len(cats))
    v = np.array([e.value for e in vals])
    lo = np.array([e.ci_low if not math.isnan(e.ci_low) else e.value for e in vals])
    hi = np.array([e.ci_high if not math.isnan(e.ci_high) else e.value for e in vals])
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(cats) + 1.2))
    ax.barh(y, v, xerr=[v - lo, hi - v], color="C0", alpha=0.8, capsize=3)
    ax.set_yticks(y, cats, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="PR-AUC with 95% CI", title="PR-AUC per category")
    fig.tight_layout()
    return _png(fig)


# -- HTML -----------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1250px;
color:#1d1d1f;padding:0 1rem;line-height:1.4}
h1{font-size:1.6rem}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.unmeasured td{color:#8a6d00;background:#fffbea}
.placeholder{border:2px dashed #c9a400;background:#fffbea;padding:.6rem 1rem;margin:.6rem 0}
img.plot{max-width:100%;display:block;margin:.4rem 0}
.text{max-width:720px;white-space:pre-wrap;word-break:break-word}
pre{background:#f6f8fa;padding:.6rem;overflow:auto;font-size:.8rem;max-height:480px}
.meta td:first-child{font-weight:600}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, row_class: Sequence[str] | None = None,
           numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{_esc(row_class[i])}"' if row_class and row_class[i] else ""
        cells = "".join(f'<td class="num">{_esc(c)}</td>' if j in numeric else f"<td>{_esc(c)}</td>"
                        for j, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(b64: str, alt: str) -> str:
    return f'<img class="plot" alt="{_esc(alt)}" src="data:image/png;base64,{b64}">'


def _generic(value: Any) -> str:
    """Another module's results (plain data from `to_dict`): a table for a list of flat
    records, a nested section per key for mappings, JSON otherwise."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value) and all(
            not isinstance(x, dict | list) for v in value for x in v.values()):
        header = list(dict.fromkeys(k for v in value for k in v))
        return _table(header, [[_cell(v.get(k)) for k in header] for v in value])
    if isinstance(value, dict) and value and all(not isinstance(v, dict | list) for v in value.values()):
        return _table(["field", "value"], [[k, _cell(v)] for k, v in value.items()])
    if isinstance(value, dict) and value and len(value) <= 60:
        return "".join(f"<details open><summary>{_esc(k)}</summary>{_generic(v)}</details>" for k, v in value.items())
    return f"<pre>{_esc(json.dumps(value, indent=2, ensure_ascii=False, default=str))}</pre>"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return _f(v, 4)
    return "–" if v is None else str(v)


def _errors_html(report: EvaluationReport, cat: str) -> str:
    e = report.errors[cat]
    parts = []
    for kind, items, why in (("Worst false positives", e.false_positives, "negatives with the highest scores"),
                             ("Worst false negatives", e.false_negatives, "positives with the lowest scores")):
        parts.append(f"<h4>{kind} ({why}, threshold {e.threshold:g})</h4>")
        if not items:
            parts.append("<p>none at this threshold</p>")
            continue
        rows = [f'<tr><td class="num">{x.score:.3f}</td><td>{_esc(x.id)}</td><td class="text">{_esc(x.text)}</td>'
                f"<td>{_esc(', '.join(f'{k}={v}' for k, v in x.groups.items()))}</td></tr>" for x in items]
        parts.append("<table><thead><tr><th>score</th><th>id</th><th>text</th><th>groups</th></tr></thead>"
                     f"<tbody>{''.join(rows)}</tbody></table>")
    return "".join(parts)


def _section_or_placeholder(report: EvaluationReport, name: str, title: str) -> str:
    value = getattr(report, name)
    out = [f'<h2 id="{name}">{_esc(title)}</h2>']
    if value is None:
        why = report.missing_sections.get(name, "not run for this report")
        out.append(f'<div class="placeholder" data-placeholder="{name}"><strong>Not included.</strong> {_esc(why)}'
                   "</div>")
    else:
        out.append(_generic(section_dict(value)))
    return "".join(out)


def _category_row_class(r: CategoryReport) -> str:
    return "" if r.measured else "unmeasured"


def render_html(report: EvaluationReport) -> str:
    m = report.meta
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>{_esc(m.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_esc(m.title)}</h1>"]
    facts = [("dataset", m.dataset), ("split", m.split), ("policy", _policy_label(report)), ("surface", m.surface),
             ("items", report.n_items), ("created", m.created)]
    parts.append('<table class="meta">' + "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>"
                                                  for k, v in facts if v not in (None, "")) + "</table>")
    parts += [f"<p>{_esc(n)}</p>" for n in m.notes]

    parts.append('<h2 id="summary">Summary</h2>')
    parts.append("<p>Figures at the policy's flag threshold (flagged = score &gt;= threshold) and across "
                 "thresholds, with 95% stratified bootstrap intervals in brackets. UNMEASURED categories lack "
                 "positives or negatives in this data: no figure is shown for them.</p>")
    parts.append(_table(SUMMARY_HEADER, summary_rows(report),
                        row_class=[_category_row_class(r) for r in report.categories.values()],
                        numeric={2, 3, 4, 8}))
    overview = overview_figure(report)
    if overview:
        parts.append(_img(overview, "PR-AUC per category"))

    parts.append('<h2 id="unmeasured">Unmeasured categories</h2>')
    if report.unmeasured:
        parts.append("<ul>" + "".join(
            f"<li><strong>{_esc(c)}</strong>: {_esc(report.categories[c].reason)} (n={report.categories[c].n}, "
            f"{report.categories[c].positives} positives)</li>" for c in report.unmeasured) + "</ul>")
    else:
        parts.append("<p>Every category was measured.</p>")

    parts.append('<h2 id="confusion">Confusion matrices at the threshold</h2>')
    rows = []
    for c in report.measured:
        r = report.categories[c]
        at = r.at_threshold
        assert at is not None
        cm = at.confusion
        base = _est(at.precision_at_base_rate) if at.precision_at_base_rate else "–"
        rows.append([c, f"{at.threshold:g}", cm.tp, cm.fp, cm.fn, cm.tn, _est(at.fnr, 4),
                     f"{base} (base rate {at.base_rate})" if at.base_rate else "–", r.n_unscored])
    parts.append(_table(["category", "threshold", "TP", "FP", "FN", "TN", "FNR", "precision at base rate",
                         "unscored"], rows, numeric={1, 2, 3, 4, 5, 8}))

    parts.append('<h2 id="plots">Curves per category</h2>')
    parts.append("<p>PR curve, ROC curve, calibration (reliability) and precision/recall against the threshold; "
                 "the policy threshold is marked in red.</p>")
    for c in report.measured:
        parts.append(f'<h3 id="cat-{_esc(c)}">{_esc(c)}</h3>')
        parts.append(_img(category_figure(report, c), f"curves for {c}"))

    parts.append('<h2 id="groups">Error rates by group</h2>')
    drawn = 0
    for c in report.measured:
        for col, rates in report.groups.get(c, {}).items():
            fig = group_figure(c, col, rates)
            if fig is None:
                continue
            drawn += 1
            parts.append(f"<h3>{_esc(c)} by {_esc(col)}</h3>")
            parts.append(_img(fig, f"{c} error rates by {col}"))
            parts.append(_table(["group", "n", "positives", "negatives", "FPR", "FNR", "flag rate"],
                                [[g.group, g.n, g.positives, g.negatives, _f(g.fpr), _f(g.fnr), _f(g.flag_rate)]
                                 for g in rates], numeric={1, 2, 3, 4, 5, 6}))
    if not drawn:
        parts.append('<div class="placeholder" data-placeholder="groups">No group column with at least two '
                     f"groups of {MIN_GROUP_ITEMS}+ labeled items.</div>")

    parts.append(_section_or_placeholder(report, "fairness", "Fairness"))
    parts.append(_section_or_placeholder(report, "robustness", "Robustness"))

    if report.comparison is not None:
        parts.append('<h2 id="comparison">Champion vs candidate</h2>')
        rows = []
        for c, r in report.comparison.items():
            pr = getattr(r, "pr_auc", None)
            rows.append([c, getattr(r, "verdict", ""), _f(pr.champion) if pr else "–", _f(pr.challenger) if pr else "–",
                         pr.difference.format() if pr else "–", getattr(r, "summary", "")])
        parts.append(_table(["category", "verdict", "PR-AUC champion", "PR-AUC candidate", "difference [95% CI]",
                             "summary"], rows))

    parts.append('<h2 id="errors">Worst errors</h2>')
    parts.append("<p>Texts are truncated and shown as plain text.</p>")
    for c in report.measured:
        parts.append(f"<h3>{_esc(c)}</h3>")
        parts.append(_errors_html(report, c))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report: EvaluationReport, out_dir: Path) -> dict[str, Path]:
    """Write report.json, summary.md and report.html into `out_dir` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(report, out_dir / "report.json"), "markdown": out_dir / "summary.md",
             "html": out_dir / "report.html"}
    paths["markdown"].write_text(render_markdown(report), encoding="utf-8")
    paths["html"].write_text(render_html(report), encoding="utf-8")
    return paths
