import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("backend", ["bogus", "agg"])
def test_an_unknown_mplbackend_is_a_config_error_naming_the_variable(backend):
    """matplotlib refuses an MPLBACKEND naming no backend on import: `kamml run` ended in a traceback."""
    code = (
        "from kamml.errors import ConfigError\n"
        "try:\n"
        "    import kamml.report.plots\n"
        "except ConfigError as exc:\n"
        "    print('ConfigError:', exc)\n"
        "else:\n"
        "    print('imported')\n"
    )
    env = {**os.environ, "MPLBACKEND": backend}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    if backend == "agg":
        assert proc.stdout.strip() == "imported"
    else:
        assert proc.stdout.startswith("ConfigError: the MPLBACKEND environment variable names no backend")
        assert "'bogus'" in proc.stdout
