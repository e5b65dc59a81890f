"""Where the course lives: the folder holding `lessons/`, `exercises/` and `solutions/`."""

from __future__ import annotations

import os
from pathlib import Path


def course_root() -> Path:
    """The course folder: $MTA_COURSE_ROOT, else the checkout this package was installed from
    (editable install), else the nearest parent of the working directory with an `exercises/` folder."""
    env = os.environ.get("MTA_COURSE_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[2]
    if (here / "exercises").is_dir() or (here / "lessons").is_dir():
        return here
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "exercises").is_dir():
            return folder
    raise FileNotFoundError(
        "cannot find the course folder (the one with exercises/ and lessons/): run from inside the "
        "checkout, install it with `pip install -e .`, or set MTA_COURSE_ROOT"
    )
