"""Rendered scripts are parsed back by bash before anything is written: all of a bundle's scripts
in one bash process, and a script this bash parsed before is not parsed again. A broken script is
still reported on its own file, every time, however many good scripts surround it."""

from __future__ import annotations

from mlgen.render.checks import check_files
from mlgen.render.environment import RenderedFile

GOOD = "#!/usr/bin/env bash\nset -euo pipefail\ncat <<'EOF'\n}\nEOF\nmain() { echo ok; }\nmain \"$@\"\n"
BROKEN = "#!/usr/bin/env bash\nif true; then\n  echo never closed\n"


def test_a_broken_script_among_good_ones_is_reported_on_its_own_file_every_time(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    files = [RenderedFile.text("deploy.sh", GOOD), RenderedFile.text("install.sh", BROKEN),
             RenderedFile.text("teardown.sh", GOOD.replace("ok", "bye"))]
    for _ in range(2):
        (problem,) = check_files(files, "cloud")
        assert problem.file == "cloud/install.sh" and "does not parse" in problem.message, problem
    assert not check_files([files[0], files[2]], "cloud")
    remembered = list((tmp_path / "cache" / "mlgen" / "bash-n").rglob("*"))
    assert len([path for path in remembered if path.is_file()]) == 2  # the good ones, by content
    assert not check_files([files[0], files[2]], "cloud")  # from the cache
    assert check_files([files[1]], "cloud")  # never cached
