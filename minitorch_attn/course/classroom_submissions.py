"""Finding the submissions in grade-class's folder: one per student, a notebook or a folder holding one.

    SUBMISSIONS_DIR/alice.ipynb                           student "alice" (the file's stem)
    SUBMISSIONS_DIR/bob/handouts/lesson02_softmax.ipynb   student "bob" (the folder's name): the notebook
        named like the handout, else the only lessonNN_*.ipynb, else the only .ipynb anywhere below it

Names starting with "." or "_" are skipped; a folder with none or several candidates becomes a Submission
without a path, whose `problem` the report shows (the student gets 0, with the reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import catalog


@dataclass
class Submission:
    student: str
    path: Path | None
    problem: str = ""


def find_submissions(folder: Path, lesson: str) -> list[Submission]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of submissions")
    wanted = f"{catalog.lesson_stem(lesson)}.ipynb"
    prefix = catalog.lesson_stem(lesson).split("_")[0] + "_"
    out = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            out.append(Submission(entry.stem, entry))
        elif entry.is_dir():
            found = sorted(p for p in entry.rglob("*.ipynb")
                           if ".ipynb_checkpoints" not in p.parts and not any(
                               part.startswith(".") for part in p.relative_to(entry).parts))
            for choose in ([p for p in found if p.name == wanted], [p for p in found if p.name.startswith(prefix)],
                           found):
                if len(choose) == 1:
                    out.append(Submission(entry.name, choose[0]))
                    break
                if len(choose) > 1:
                    names = ", ".join(str(p.relative_to(entry)) for p in choose)
                    out.append(Submission(entry.name, None, f"several notebooks ({names}); keep one"))
                    break
            else:
                out.append(Submission(entry.name, None, "no .ipynb in the folder"))
    return out
