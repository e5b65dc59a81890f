"""The statuses grade-class gives a check (one graded test) and an exercise, as they appear in grades.csv.

    pass / partial / fail      every check passed / some did / none did
    timeout                    a cell or a test ran past --cell-timeout (the harness's alarm stopped it)
    notebook timeout           a whole run passed --notebook-timeout (the grader killed the sandbox)
    grading process died       the sandbox ended without its end record (os._exit, a signal, out of memory)
    tampering                  the learner's code touched what the verdicts rest on (grade_runner's audit)
    syntax error / error in code cell   the exercise's own cell did not run
    unreadable notebook / no notebook    nothing to grade; grader error: a bug of ours, one submission only
    not run                    the check never started (an earlier problem stopped the run)

`extract` adds CODE_MISSING, REJECTED and LIBRARY (a cell without its grade_id, code its review refused, a
cell that edits the library), and `handout` MODIFIED and MISSING (an edited or deleted check cell).
"""

PASS, PARTIAL, FAIL = "pass", "partial", "fail"
TIMEOUT, DIED, NOTEBOOK_TIMEOUT, TAMPERING = "timeout", "grading process died", "notebook timeout", "tampering"
SYNTAX_ERROR, CODE_ERROR = "syntax error", "error in code cell"
UNREADABLE, NO_NOTEBOOK, GRADER_ERROR, NOT_RUN = "unreadable notebook", "no notebook", "grader error", "not run"
