"""Root conftest: the course's pytest plugin (`--target`, `--grade-json`, the `exercise` marker and the
`load_target` fixture); see minitorch_attn/course/pytest_plugin.py."""

pytest_plugins = ["minitorch_attn.course.pytest_plugin"]
