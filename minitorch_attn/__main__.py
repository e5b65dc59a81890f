"""Command line: `python -m minitorch_attn COMMAND ...`

    tour                      run every lesson's demonstration headless and write the plots
    lessons build|check       execute the lesson notebooks from their .py sources / check they are fresh
    course generate|check|release|grade ...   the course machinery (see minitorch_attn/course/cli.py)
    grade ...                 shorthand for `course grade ...`
    grade-class DIR --lesson NN ...   grade a folder of submitted notebooks (docs/instructors.md)
    train-char --data PATH --preset baby|tiny [--iters N --out DIR]   train a character-level GPT (lesson 09)
    sample --checkpoint PATH [--prompt TEXT --tokens N]              generate text from its checkpoint
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
    if command == "grade-class":
        from .course.classroom import main as grade_class_main

        return grade_class_main(rest)
    # ---- lesson 09: the character-level language model
    if command in ("train-char", "sample"):
        from .training.char_lm import main as train_main

        return train_main(rest, command=command)
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
