"""Points from test outcomes, and the grade table. No pytest here: the plugin and the CLI share it.

The grade JSON (`pytest --grade-json PATH`, `python -m minitorch_attn grade --json PATH`):

    {"target": "exercises", "total": 7, "max": 21,
     "exercises": [{"id": "1.1", "title": ..., "lesson": "01_autograd",
                    "points_earned": 2, "points_max": 2, "points_catalog": 2,
                    "tests_passed": 2, "tests_total": 2, "status": "pass" | "partial" | "fail",
                    "first_error": "" | "<first line of the first failure>"}],
     "tests": [{"nodeid": ..., "exercise": "1.1", "points": 1,
                "outcome": "passed" | "failed" | "error" | "skipped",
                "message": "" | "<first line of its failure>"}]}

An exercise's `points_max` is the sum of its collected tests' points; with the whole suite collected it
equals `points_catalog` (a test checks this).
"""

from __future__ import annotations

from . import catalog


def _num(x: float):
    return int(x) if float(x).is_integer() else round(float(x), 6)


def summarise(target: str, tests: list[dict]) -> dict:
    """The grade report for `tests` (dicts with nodeid, exercise, points, outcome, message)."""
    by_ex: dict[str, list[dict]] = {}
    for t in tests:
        by_ex.setdefault(t["exercise"], []).append(t)
    lessons = {catalog.get(e).lesson for e in by_ex}
    rows = []
    for ex in catalog.EXERCISES:
        if ex.lesson not in lessons:
            continue
        mine = by_ex.get(ex.id, [])
        passed = [t for t in mine if t["outcome"] == "passed"]
        earned = sum(t["points"] for t in passed)
        maximum = sum(t["points"] for t in mine)
        failures = [t["message"] for t in mine if t["outcome"] != "passed" and t["message"]]
        if mine and len(passed) == len(mine):
            status = "pass"
        elif passed:
            status = "partial"
        else:
            status = "fail"
        first = failures[0] if failures else ("" if mine else "no graded test collected for this exercise")
        rows.append({
            "id": ex.id, "title": ex.title, "lesson": ex.lesson,
            "points_earned": _num(earned), "points_max": _num(maximum), "points_catalog": _num(ex.points),
            "tests_passed": len(passed), "tests_total": len(mine), "status": status, "first_error": first,
        })
    return {
        "target": target,
        "total": _num(sum(r["points_earned"] for r in rows)),
        "max": _num(sum(r["points_max"] for r in rows)),
        "exercises": rows,
        "tests": [{**t, "points": _num(t["points"])} for t in tests],
    }


def _clip(s: str, width: int) -> str:
    return s if len(s) <= width else s[: width - 1] + "…"


def format_table(report: dict, error_width: int = 60) -> str:
    """The report as a text table: exercise, title, earned/max, status, first error; then the total."""
    rows = [("exercise", "title", "points", "status", "first error")]
    for r in report["exercises"]:
        points = f"{r['points_earned']}/{r['points_max']}"
        if r["points_max"] != r["points_catalog"]:
            points += f" (catalog: {r['points_catalog']})"
        error = _clip(r["first_error"], error_width)
        rows.append((r["id"], _clip(r["title"], 44), points, r["status"], error))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(f"{c:{w}}" for c, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len("first error"))
    lines.append(f"total: {report['total']}/{report['max']} points (target: {report['target']})")
    return "\n".join(line.rstrip() for line in lines)
