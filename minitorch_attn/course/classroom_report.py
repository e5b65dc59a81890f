"""grade-class's outputs: grades.csv (a row per student and exercise), grades.json (the whole report) and the
table it prints."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from . import catalog
from .classroom_status import PASS

CSV_FIELDS = ["student", "exercise", "points", "max", "status", "first_error", "sandbox", "seconds", "code_sha256",
              "tests_sha256"]
STUDENT_FIELDS = ("sandbox", "seconds", "code_sha256", "tests_sha256")  # per submission, repeated on its rows


def write_reports(report: dict, out: Path) -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / "grades.csv", out / "grades.json"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for s in report["students"]:
        for row in s["exercises"]:
            writer.writerow({**{k: s.get(k, "") for k in STUDENT_FIELDS}, **{k: row[k] for k in CSV_FIELDS
                                                                            if k in row}})
    csv_path.write_text(buf.getvalue(), encoding="utf-8")
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return csv_path, json_path


def _clip(s: str, width: int) -> str:
    return s if len(s) <= width else s[: width - 1] + "…"


def format_class_table(report: dict, error_width: int = 70) -> str:
    """One row per student: points per exercise, total, and what went wrong where."""
    ids = [ex.id for ex in catalog.for_lesson(report["lesson"])
           if any(r["exercise"] == ex.id for s in report["students"] for r in s["exercises"])]
    head = ["student", *ids, "total", "notes"]
    rows = [head]
    for s in report["students"]:
        by = {r["exercise"]: r for r in s["exercises"]}
        cells = [s["student"]]
        for i in ids:
            r = by.get(i)
            cells.append(f"{r['points']}/{r['max']}" if r else "-")
        cells.append(f"{s['total']}/{s['max']}")
        notes = [f"{r['exercise']} {r['status']}" + (f" ({r['first_error']})" if r["first_error"] else "")
                 for r in s["exercises"] if r["status"] != PASS]
        cells.append(_clip("; ".join(notes), error_width))
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = ["  ".join(f"{c:{w}}" for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  -----")
    n = len(report["students"])
    lines.append(f"{n} submission(s) graded in {report['seconds']} s (lesson {report['lesson']}, max "
                 f"{report['max']} points; isolation: {report.get('sandbox', '?')})")
    return "\n".join(line.rstrip() for line in lines)
