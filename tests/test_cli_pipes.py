"""The command line in a shell pipeline: a reader that stops early ends the command quietly."""

from __future__ import annotations

import subprocess
import sys

from datafactory import make_system

from dynforecast.io.h5md import write_h5md


def test_a_closed_pipe_ends_the_command_with_141_and_no_message(tmp_path):
    data = tmp_path / "many.h5"
    write_h5md(data, [make_system(f"s{i:03d}", 3, 2) for i in range(300)])
    command = [sys.executable, "-c", "from dynforecast.cli import app; app()", "info", str(data)]
    reader = subprocess.Popen([*command, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout.read(10) == b'{\n  "file"'
    reader.stdout.close()  # like `| head -c 10`: the reader goes away mid-output
    stderr = reader.stderr.read()
    assert reader.wait(timeout=60) == 141
    assert stderr == b""
