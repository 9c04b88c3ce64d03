"""A build's report (`build --json`) as a Markdown summary: a CI job summary, a notebook's display."""

from __future__ import annotations

from typing import Any


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def build_markdown(report: dict[str, Any]) -> str:
    """A heading with the verdict, the model's layers as a table, then the verification and the notes."""
    v = report.get("verification")
    verdict = "not verified" if not v else ("PASS" if v.get("passed") else "FAIL")
    hp = report.get("hyperparameters", {})
    lines = [
        f"### `{_cell(report.get('output'))}`: {verdict}",
        "",
        f"{report.get('file_size', 0):,} bytes; weights: {_cell(report.get('weights_format'))} "
        f"({_cell(report.get('weights_source'))}); quantize: {_cell(hp.get('quantize', 'none'))}",
        "",
        "| layer | direction | num_units | input_size | output_size | cell |",
        "|---:|---|---:|---:|---:|---|",
        *(
            f"| {ls['layer']} | {ls['direction']} | {ls['num_units']} | {ls['input_size']} | {ls['output_size']} "
            f"| {_cell(ls.get('source') or '')} |"
            for ls in report.get("layers", [])
        ),
        "",
    ]
    if v:
        lines.append(
            f"- interpreter ({_cell(v.get('runtime'))} {_cell(v.get('runtime_version'))}) vs NumPy reference on "
            f"input {v.get('input_shape')}: max abs error {v.get('max_abs_error', 0):.3g} "
            f"(tolerance {_cell(v.get('tolerance'))})"
        )
        src = v.get("against_source")
        if src:
            lines.append(
                f"- against the source ({_cell(src.get('reference'))}): max abs error "
                f"{src.get('max_abs_error') or 0:.3g}: {'PASS' if src.get('passed') else 'FAIL'}"
            )
        fw = v.get("framework")
        if fw:
            shown = (
                "not run: " + _cell(fw.get("reason"))
                if fw.get("passed") is None
                else (f"max abs error {fw.get('max_abs_error'):.3g}: {'PASS' if fw.get('passed') else 'FAIL'}")
            )
            lines.append(f"- against {_cell(fw.get('framework'))} itself: {shown}")
    lines += [f"- note: {_cell(n)}" for n in report.get("notes", [])]
    return "\n".join(lines) + "\n"
