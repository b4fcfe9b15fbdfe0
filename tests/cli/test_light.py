"""The command line starts without torch: its sampling options are derived on first use."""

from __future__ import annotations

import subprocess
import sys


def test_the_cli_and_its_help_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from sparsediff.cli import main\n"
        "result = CliRunner().invoke(main, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "result = CliRunner().invoke(main, ['fill', '--help'])\n"  # derives the options
        "assert result.exit_code == 0, result.output\n"
        "assert '--cfg-scale' in result.output, result.output\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
