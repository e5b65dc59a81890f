"""Command line: `python -m minitorch_attn COMMAND ...`

    tour                      run every lesson's demonstration headless and write the plots
    lessons build|check       execute the lesson notebooks from their .py sources / check they are fresh
    course generate|check|release|grade ...   the course machinery (see minitorch_attn/course/cli.py)
    grade ...                 shorthand for `course grade ...`
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "tour":
        from .tour import main as tour_main

        return tour_main(rest)
    if command == "lessons":
        from .course.notebooks import main as lessons_main

        return lessons_main(rest)
    if command == "course":
        from .course.cli import main as course_main

        return course_main(rest)
    if command == "grade":
        from .course.cli import main as course_main

        return course_main(["grade", *rest])
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
