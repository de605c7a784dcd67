"""The scaling report: what was run, the fitted laws with CIs, backtests, per-class laws, figures.

`write_report` turns the tidy results table into `report.html` (self-contained:
figures inlined as base64 PNG) and `report.md` (figures linked as the PNGs saved
beside it). A law that cannot be fitted is reported with the reason, never
raised; the warnings section collects every such reason and every oddity
(non-monotone curves, failed or unfinished runs, classes with few positives).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scaling import plots
from scaling.laws import (
    AUTO_FORMS,
    LawError,
    MetricFit,
    asymptote,
    average,
    backtest,
    describe_target,
    fit_metric,
    flops_per_nd,
    format_ci,
    format_number,
    per_class_fits,
    per_class_laws,
    to_metric,
)
from scaling.laws import fit as laws_fit
from scaling.laws.selection import RULES, band_coverage
from scaling.laws.table import fit_summaries, summary_classes
from scaling.results import MEASUREMENTS, ROW_COLUMNS, selected
from scaling.tuning import parse_select

TIDY_COLUMNS = (
    "run_id",
    "sweep",
    "status",
    "selected",
    "tuning_point",
    "tuning",
    "select",
    "experiment",
    *ROW_COLUMNS,
)
SEED_COLUMNS = ("data_seed", "init_seed")
JOINT_X = ("n_params", "subset_size")
MIN_POSITIVES = 10  # classes with fewer positives on the split are flagged
SELECTION_BOOTSTRAP = 100  # refits behind the chosen and averaged models' bands and coverage
CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; } tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0; } img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #555; }
.warnings li { color: #8a4b00; }
"""


@dataclass(frozen=True)
class Image:
    """A saved figure (its PNG; a PDF of the same stem sits beside it) and its caption."""

    png: Path
    caption: str


Block = str | list | pd.DataFrame | Image  # paragraph, bullet list, table or image


def write_report(
    table: pd.DataFrame,
    out_dir: Path,
    *,
    title: str = "Scaling report",
    form: str = "saturating",
    metrics: tuple[str, ...] = ("auroc", "auprc", "f1", "loss"),
    target: float | None = None,
    n_bootstrap: int = 1000,
    split: str = "test",
    adaptive: dict[str, dict] | None = None,
    all_runs: bool = False,
) -> dict[str, Path]:
    """Write report.html and report.md (plus figures as PNG and PDF) into `out_dir`.

    Laws of `form` are fitted on `split` to each of `metrics` (micro and macro
    classes; "all" for loss) against subset_size. `target` is a value of
    metrics[0] for the macro class (e.g. AUROC 0.95): the report then gives the
    subset_size and training cost needed to reach it. `adaptive` maps a sweep to the state
    of its adaptive rounds (`scaling.adaptive.states`). Laws use the runs marked `selected`
    (the winners of per-size tuning) unless `all_runs`; a tuned store gets a "Per-size
    tuning" section either way. Returns the paths by name ("html", "markdown", and one
    per figure).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    full = table
    table = table if all_runs else selected(table)
    runs = _one_row_per_run(table)
    warnings: list[str] = []
    fits = _fit_metrics(table, metrics, split, form, n_bootstrap, warnings)
    sections = [
        ("Summary", _summary(runs, split, form, n_bootstrap, warnings)),
        ("Runs", _runs(runs, warnings)),
        ("Fitted laws", _laws(table, fits, metrics[0], target, out_dir)),
        ("Model selection", _selection(table, fits, metrics[0], split, out_dir, warnings)),
        (
            "Per-class laws",
            _per_class(table, metrics[0], split, form, n_bootstrap, out_dir, warnings),
        ),
        (
            "Joint law over model size and data",
            _joint(table, metrics[0], split, n_bootstrap, out_dir),
        ),
    ]
    if "tuning_point" in full.columns and (full["tuning_point"] >= 0).any():
        blocks = _tuning(full, metrics[0], split, form, n_bootstrap, all_runs, warnings)
        sections.insert(2, ("Per-size tuning", blocks))
    if adaptive:
        sections.append(("Adaptive rounds", _adaptive(adaptive)))
    sections.insert(1, ("Warnings", [warnings or ["None."]]))
    paths = {"html": out_dir / "report.html", "markdown": out_dir / "report.md"}
    paths["html"].write_text(_html(title, sections), encoding="utf-8")
    paths["markdown"].write_text(_markdown(title, sections, out_dir), encoding="utf-8")
    figures = [b for _, blocks in sections for b in blocks if isinstance(b, Image)]
    return paths | {f.png.stem: f.png for f in figures}


# ---------------------------------------------------------------------------
# Sections: each returns its blocks and adds what looks wrong to `warnings`


def _one_row_per_run(table: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("run_id", "status") if c not in table.columns]
    if missing:
        raise ValueError(f"results table lacks the columns {missing}")
    return table.drop_duplicates("run_id").reset_index(drop=True)


def _varied(runs: pd.DataFrame) -> dict[str, list]:
    """Config columns that take several values across runs (missing ones aside), and those."""
    config = [c for c in runs.columns if c not in TIDY_COLUMNS + MEASUREMENTS]
    values = {c: sorted(runs[c].dropna().map(format_number).unique(), key=_natural) for c in config}
    return {c: v for c, v in values.items() if len(v) > 1}


def _summary(runs, split: str, form: str, n_bootstrap: int, warnings: list[str]) -> list[Block]:
    names = {
        c: ", ".join(map(str, runs[c].dropna().unique()))
        for c in ("experiment", "sweep")
        if c in runs
    }
    varied = _varied(runs)
    text = [f"{key.capitalize()}: {value}." for key, value in names.items() if value]
    text.append(
        f"{_count(len(runs), 'run')}. Laws of the '{form}' form are fitted on the {split} split "
        "to the error (1 − metric, or the loss) of finished runs, averaged over seeds at each "
        f"subset_size; 95% CIs come from {n_bootstrap} bootstrap refits resampling seeds within "
        "each subset_size."
    )
    tuned = {part.split("=")[0] for label in runs.get("tuning", []) for part in label.split()}
    pooled = [c for c in varied if c not in (*SEED_COLUMNS, "subset_size", "name", *tuned)]
    if pooled:
        warnings.append(
            f"runs also vary in {', '.join(pooled)}; the laws over subset_size pool those runs"
        )
    shown = pd.DataFrame(
        {
            "column": list(varied),
            "values": [", ".join(v[:12]) + (" …" if len(v) > 12 else "") for v in varied.values()],
        }
    )
    if not varied:
        return [" ".join(text), "No config column varies between runs."]
    return [" ".join(text), "Config columns that vary between runs:", shown]


def _runs(runs: pd.DataFrame, warnings: list[str]) -> list[Block]:
    counts = runs["status"].value_counts().rename_axis("status").reset_index(name="runs")
    blocks: list[Block] = [counts]
    broken = runs[runs["status"].isin(("failed", "diverged"))]
    if len(broken):
        columns = ["run_id", "status", *[c for c in _varied(runs) if c in broken]]
        blocks += ["Failed and diverged runs (not fitted):", broken[columns]]
        warnings.append(f"{_count(len(broken), 'run')} failed or diverged: not fitted (see Runs)")
    unfinished = runs[runs["status"].isin(("running", "pending"))]
    if len(unfinished):
        warnings.append(f"{_count(len(unfinished), 'run')} still running or pending: not fitted")
    return blocks


def _fit_metrics(table, metrics, split, form, n_bootstrap, warnings) -> list[MetricFit]:
    if not (table["status"] == "finished").any():
        warnings.append("no run has finished: there is nothing to fit yet")
        return []
    fits, failures = fit_summaries(table, metrics, split=split, form=form, n_bootstrap=n_bootstrap)
    warnings += [f"no law for {metric} ({cls}): {e}" for metric, cls, e in failures]
    for fit in fits:
        points = fit.points.sort_values("x")
        rises = np.flatnonzero(np.diff(points["mean"].to_numpy()) > 0)
        if len(rises):
            steps = ", ".join(
                f"{points['x'].iloc[i]:g} → {points['x'].iloc[i + 1]:g}" for i in rises
            )
            warnings.append(f"{fit.metric} ({fit.cls}) error is non-monotone: it rises at {steps}")
    return fits


def _laws(table, fits: list[MetricFit], metric: str, target, out_dir: Path) -> list[Block]:
    if not fits:
        return ["No law could be fitted (see Warnings)."]
    rows = []
    for fit in fits:
        law = fit.law
        row = {"metric": fit.metric, "class": fit.cls, "form": law.form, "points": len(law.y)}
        row["runs"] = int(fit.points["n_seeds"].sum())
        row |= {p: format_ci(v, law.ci[p]) for p, v in law.params.items()}
        row["asymptote (metric)"] = format_ci(*asymptote(fit))
        row[f"metric at 10× largest {fit.x_name}"] = format_ci(*_metric_at(fit, 10 * law.x.max()))
        rows.append(row)
    blocks: list[Block] = [
        "Law parameters with 95% bootstrap CIs; E, A (and B) are in error units (1 − metric, "
        "or the loss), the asymptote and the extrapolation in the metric's own units.",
        pd.DataFrame(rows),
    ]
    png, _ = plots.plot_scaling(fits, out_dir / "scaling")
    blocks.append(
        Image(
            png,
            "Scaling curves: mean ± std over seeds, fitted law with 95% band, "
            "dashed beyond the largest subset_size.",
        )
    )
    png, _ = plots.plot_residuals(fits, out_dir / "residuals")
    blocks.append(Image(png, "Log-space residuals of each law."))
    if target is not None:
        headline = [f for f in fits if (f.metric, f.cls) == (metric, summary_classes(metric)[-1])]
        blocks.append(
            describe_target(table, headline[0], target)
            if headline
            else f"Target {metric} {target:g}: no law for {metric} ({summary_classes(metric)[-1]})."
        )
    return blocks


def _selection(table, fits, metric: str, split: str, out_dir: Path, warnings) -> list[Block]:
    tables, reasons, headline = [], [], None
    for fit in fits:
        try:
            result = backtest(fit.law.x, fit.law.y, AUTO_FORMS, weights=fit.law.weights)
        except LawError as e:
            warnings.append(f"no backtest for {fit.metric} ({fit.cls}): {e}")
            continue
        tables.append(result.table.assign(metric=fit.metric, **{"class": fit.cls}))
        reasons.append(f"{fit.metric} ({fit.cls}): {result.reason}.")
        if (fit.metric, fit.cls) == (metric, summary_classes(metric)[-1]):
            headline = (fit, result)
    if not tables:
        return ["No backtest was possible (see Warnings)."]
    columns = ["form", "n_params", "log_rmse", "drift", "rel_error", "weight", "aic", "bic"]
    columns.append("chosen")
    blocks: list[Block] = [
        "Rolling-origin backtest: at several cut-offs each form is fitted to the subset sizes up "
        "to the cut-off and predicts the larger ones up to 10× ahead; log_rmse is its error in "
        "log space weighted towards the cut-off whose test spans the full 10× (lower is better), "
        "drift how fast that error grew with the distance ahead (log error per unit of log "
        "size, which widens the bands beyond the data), rel_error the mean relative error, "
        "weight its share in the averaged model. Among forms within "
        f"{RULES.se_multiple:g} standard errors of the best, the one with the fewest "
        f"parameters whose BIC is within {RULES.bic_margin:g} of their lowest is chosen. AIC "
        "and BIC are of the fit to all points.",
        pd.concat(tables)[["metric", "class", *columns, "note"]],
        reasons,
    ]
    if headline:
        blocks += _headline_selection(*headline, out_dir, warnings)
    cls = summary_classes(metric)[-1]
    compared = []
    for name in AUTO_FORMS:
        try:
            compared.append(
                fit_metric(table, metric=metric, cls=cls, split=split, form=name, n_bootstrap=0)
            )
        except LawError:
            continue  # already reported by the backtest
    if compared:
        png, _ = plots.plot_forms(compared, out_dir / "forms")
        blocks.append(Image(png, f"Law forms fitted to {metric} ({cls})."))
    return blocks


def _headline_selection(fit: MetricFit, result, out_dir: Path, warnings) -> list[Block]:
    """The backtest figure, the chosen and the averaged model, and the band's coverage."""
    png, _ = plots.plot_backtest(result, out_dir / "backtest", fit.x_name)
    blocks: list[Block] = [
        Image(png, f"Backtest of {fit.metric} ({fit.cls}): error of each form by cut-off.")
    ]
    points = fit.points
    x = np.repeat(points["x"].to_numpy(float), [len(v) for v in points["values"]])
    err = np.concatenate([np.asarray(v, dtype=float) for v in points["values"]])
    seeds = np.concatenate([np.arange(len(v)) for v in points["values"]])
    at = 10 * x.max()
    n_bootstrap = SELECTION_BOOTSTRAP
    try:
        chosen = laws_fit(x, err, result.chosen, groups=seeds, n_bootstrap=n_bootstrap)
        mixed = average(x, err, AUTO_FORMS, groups=seeds, n_bootstrap=n_bootstrap)
        coverage = band_coverage(x, err, result.chosen, groups=seeds, n_bootstrap=n_bootstrap)
    except LawError as e:
        warnings.append(f"no model selection summary for {fit.metric} ({fit.cls}): {e}")
        return blocks
    rows = []
    for name, model in ((f"chosen: {result.chosen}", chosen), ("averaged", mixed)):
        low, high = model.predict_band([at])
        value, band = to_metric(fit.metric, model.predict([at])[0], (low[0], high[0]))
        rows.append(
            {"model": name, f"{fit.metric} at {at:g} (95% band of a run)": format_ci(value, band)}
        )
    weights = ", ".join(
        f"{m.form} {w:.2f}" for m, w in zip(mixed.members, mixed.weights, strict=True)
    )
    share = coverage["inside"].sum() / coverage["runs"].sum()
    blocks += [
        f"Chosen and averaged model (weights {weights}) at 10× the largest {fit.x_name}; the "
        "band holds one new run: bootstrap parameter uncertainty plus the run-to-run noise.",
        pd.DataFrame(rows),
        f"Measured coverage of the chosen form's 95% band: {share:.0%} of "
        f"{int(coverage['runs'].sum())} runs beyond the backtest's cut-offs fell inside it.",
        coverage,
    ]
    return blocks


def _per_class(table, metric, split, form, n_bootstrap, out_dir: Path, warnings) -> list[Block]:
    try:
        fits = per_class_fits(table, metric=metric, split=split, form=form, n_bootstrap=n_bootstrap)
    except LawError as e:
        return [f"No per-class laws: {e}."]
    summary = per_class_laws(
        table, metric=metric, split=split, form=form, min_positives=MIN_POSITIVES, fits=fits
    )
    few = summary.loc[summary["too_few_positives"], "class"].tolist()
    if few:
        warnings.append(
            f"classes with fewer than {MIN_POSITIVES} positives on {split}: {', '.join(few)}"
        )
    for cls, note in summary.loc[summary["note"] != "", ["class", "note"]].itertuples(index=False):
        warnings.append(f"no law for {metric} of class {cls}: {note}")
    blocks: list[Block] = [
        f"Exponent alpha and asymptotic {metric} E per class, with 95% CIs.",
        summary,
    ]
    fitted = [f for f in fits.values() if isinstance(f, MetricFit)]
    if fitted:
        png, _ = plots.plot_per_class(fitted, out_dir / "per_class")
        blocks.append(Image(png, f"Per-class scaling of {metric}."))
    return blocks


def _tuning(table, metric: str, split: str, form: str, n_bootstrap: int, all_runs, warnings):
    """Per size and seed, each tuning point's validation metric and the winner; then the law
    of the fixed recipe (the first tuning point) beside the law of the tuned curve."""
    runs = _one_row_per_run(table)
    tuned = runs[runs["tuning_point"] >= 0]
    blocks: list[Block] = []
    for sweep, group in tuned.groupby("sweep"):
        select = group["select"].iloc[0]
        sel = parse_select(select)
        rows = table[
            table["run_id"].isin(group["run_id"])
            & (table["split"] == "val")
            & (table["metric"] == sel.metric)
            & (table["class"] == sel.cls)
        ]
        score = rows.set_index("run_id")["value"]
        labels = group.sort_values("tuning_point")["tuning"].unique().tolist()
        keys = [c for c in ("subset_size", *SEED_COLUMNS) if c in group]
        per_size = []
        for key, cell in group.groupby(keys, sort=True):
            row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
            shown = [
                "pruned" if status == "pruned" else format_number(value)
                for status, value in zip(cell["status"], cell["run_id"].map(score), strict=True)
            ]
            by_label = dict(zip(cell["tuning"], shown, strict=True))
            row |= {label: by_label.get(label, format_number(np.nan)) for label in labels}
            winner = cell[cell["selected"].astype(bool)]["tuning"]
            row["selected"] = winner.iloc[0] if len(winner) else "(none finished)"
            per_size.append(row)
        winners = group[group["selected"].astype(bool)]["tuning"].value_counts()
        direction = "higher" if sel.higher_is_better else "lower"
        blocks += [
            f"Sweep {sweep} trains {_count(len(labels), 'tuning point')} at every subset_size "
            f"and seed and selects, within each, the finished run with the best {select} "
            f"({direction} is better); test data never takes part in the choice. "
            + (
                "Laws elsewhere in this report use every point (--all-runs)."
                if all_runs
                else "Laws elsewhere in this report use the selected runs."
            ),
            pd.DataFrame(per_size),
        ]
        if pruned := int((group["status"] == "pruned").sum()):
            blocks.append(
                f"Successive halving pruned {pruned} of the {len(group)} tuning runs: "
                f"each stopped at a rung of its training, behind the others of its group on "
                f"{select} so far (cells read 'pruned'); the same sweep without halving "
                "trains them to the end."
            )
        guessed = runs[(runs["sweep"] == sweep) & runs["tuning"].str.endswith("(interpolated)")]
        if len(guessed):
            at = guessed.groupby("subset_size")["tuning"].first()
            blocks.append(
                "Not tuned but interpolated in log-size between the winners at the tuned sizes "
                "(numbers in log value, clamped beyond the tuned sizes): "
                + "; ".join(
                    f"subset_size {size}: {label.removesuffix(' (interpolated)')}"
                    for size, label in at.items()
                )
                + "."
            )
        if len(winners):
            blocks.append(
                f"Most often selected: {winners.index[0]} ({winners.iloc[0]} of "
                f"{int(winners.sum())} groups)."
            )
        fixed = table[table["run_id"].isin(group[group["tuning_point"] == 0]["run_id"])]
        chosen = table[table["run_id"].isin(group[group["selected"].astype(bool)]["run_id"])]
        laws_rows = []
        for name, part in ((f"fixed recipe: {labels[0]} (first point)", fixed), ("tuned", chosen)):
            for m in dict.fromkeys((metric, "loss")):
                cls = summary_classes(m)[-1]
                row = {"curve": name, "metric": m, "class": cls}
                try:
                    fit = fit_metric(
                        part, metric=m, cls=cls, split=split, form=form, n_bootstrap=n_bootstrap
                    )
                except LawError as e:
                    warnings.append(f"per-size tuning, {name}, {m}: no law: {e}")
                    laws_rows.append(row | {"alpha": f"no law: {e}"})
                    continue
                law = fit.law
                row["alpha"] = format_ci(law.params["alpha"], law.ci["alpha"])
                row["log-RMSE of residuals"] = format_number(
                    float(np.sqrt(np.mean(law.residuals**2)))
                )
                row["points"] = len(law.y)
                laws_rows.append(row)
        blocks += [
            f"Laws of the '{form}' form on the {split} split: the fixed recipe (the first "
            "tuning point at every size) beside the tuned curve (the selected run at every "
            "size), exponents with 95% bootstrap CIs. A gap between them is how much the "
            "recipe's fit to each size biased the fixed-recipe exponent.",
            pd.DataFrame(laws_rows),
        ]
    return blocks


def _adaptive(states: dict[str, dict]) -> list[Block]:
    """Per adaptive sweep: the question, and its answer and interval after each round with the
    compute spent."""
    from scaling.adaptive import rounds_table

    blocks: list[Block] = []
    for sweep, state in states.items():
        key = state["key"]
        blocks.append(
            f"Sweep {sweep}: {key['question']} ({key['form']} law); cost in {key['unit']} "
            "planned, and worker-seconds measured."
        )
        blocks.append(rounds_table(state))
    return blocks


def _joint(table, metric: str, split: str, n_bootstrap: int, out_dir: Path) -> list[Block]:
    finished = table[table["status"] == "finished"]
    if not all(c in finished and finished[c].nunique() > 1 for c in JOINT_X):
        return ["Not fitted: the finished runs do not vary both n_params and subset_size."]
    try:
        fit = fit_metric(
            table,
            metric=metric,
            cls=summary_classes(metric)[-1],
            split=split,
            x=JOINT_X,
            form="joint",
            n_bootstrap=n_bootstrap,
        )
        k = flops_per_nd(table, JOINT_X)
    except LawError as e:
        return [f"Not fitted: {e}."]
    params = pd.DataFrame([{p: format_ci(v, fit.law.ci[p]) for p, v in fit.law.params.items()}])
    png, _ = plots.plot_joint(fit, out_dir / "joint", flops_per_nd=k)
    return [
        f"E + A·N^(−alpha) + B·D^(−beta) fitted to the error of {metric} ({fit.cls}), "
        f"N = n_params, D = subset_size; compute C = {format_number(k)}·N·D from the runs' FLOPs.",
        params,
        Image(png, "Iso-error contours, the runs, and the compute-optimal frontier."),
    ]


# ---------------------------------------------------------------------------
# Numbers


def _metric_at(fit: MetricFit, x: float) -> tuple[float, tuple[float, float]]:
    """The law's metric at x with its 95% band (NaN without bootstrap fits)."""
    law = fit.law
    low, high = law.predict_ci([x]) if len(law.bootstrap) else ([np.nan], [np.nan])
    return to_metric(fit.metric, law.predict([x])[0], (low[0], high[0]))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _natural(value: str):
    """Sort key: numbers by value, then text."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _cells(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.map(format_number)


# ---------------------------------------------------------------------------
# Rendering


def _html(title: str, sections) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for heading, blocks in sections:
        body.append(f"<h2>{html.escape(heading)}</h2>")
        for block in blocks:
            if isinstance(block, pd.DataFrame):
                body.append(_cells(block).to_html(index=False, escape=True, border=0))
            elif isinstance(block, Image):
                png = block.png.read_bytes()
                width = int.from_bytes(png[16:20], "big") * 96 / plots.DPI  # PNG header: width
                data = base64.b64encode(png).decode("ascii")
                caption = html.escape(block.caption)
                body.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{caption}" '
                    f'style="width: {width:.0f}px"><figcaption>{caption}</figcaption></figure>'
                )
            elif isinstance(block, list):
                items = "".join(f"<li>{html.escape(str(item))}</li>" for item in block)
                body.append(f'<ul class="warnings">{items}</ul>')
            else:
                body.append(f"<p>{html.escape(block)}</p>")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _markdown(title: str, sections, out_dir: Path) -> str:
    lines = [f"# {title}", ""]
    for heading, blocks in sections:
        lines += [f"## {heading}", ""]
        for block in blocks:
            if isinstance(block, pd.DataFrame):
                lines += _markdown_table(block)
            elif isinstance(block, Image):
                link = block.png.relative_to(out_dir).as_posix()
                lines += [f"![{block.caption}]({link})", "", f"*{block.caption}*"]
            elif isinstance(block, list):
                lines += [f"- {item}" for item in block]
            else:
                lines.append(block)
            lines.append("")
    return "\n".join(lines)


def _markdown_table(frame: pd.DataFrame) -> list[str]:
    def row(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [row(frame.columns), "|" + "---|" * len(frame.columns)] + [
        row(r) for r in _cells(frame).itertuples(index=False)
    ]
