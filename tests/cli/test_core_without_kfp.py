"""``noa_core`` never imports ``kfp`` (ARCHITECTURE.md, layers): importing every module of the
package and building the whole ``noa`` parser, help texts included, leaves ``kfp`` unloaded; only
running a ``noa pipeline`` action loads it."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import importlib, pkgutil, sys
import noa_core
from noa_core.cli import build_parser
for m in pkgutil.walk_packages(noa_core.__path__, "noa_core."):
    if not m.name.endswith("__main__"):
        importlib.import_module(m.name)
build_parser().format_help()
loaded = sorted(n for n in sys.modules if n == "kfp" or n.startswith("kfp."))
print(len(loaded), loaded[:3])
"""


def test_no_noa_core_module_imports_kfp() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "0 []", out


def test_a_pipeline_action_does_load_kfp() -> None:
    probe = CHECK.replace("build_parser().format_help()",
                          "from noa_core.cli.pipeline_cmd import _errors; _errors()\n"
                          "import pipelines.noa_phase1")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert not out.startswith("0 "), out  # the check above can see kfp when it is there
