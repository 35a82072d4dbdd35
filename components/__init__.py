"""KFP v2 components of the NOA Phase 1 pipeline: one folder per stage, each a thin door to the
``noa_core`` stage function its CLI command calls, with the same parameter names.

Every component is a lightweight KFP component (its body is embedded in the compiled IR) whose
``base_image`` is the project image and whose runtime never pip-installs anything
(``install_kfp_package=False``): ``noa_core`` and ``kfp`` are already in the image. The pipeline
overrides the image per task from its ``image`` parameter (``set_container_image``), so a run can
pin another tag or a digest without recompiling. Bodies import inside the function, as KFP
requires; they hold no logic a test of ``noa_core`` could not reach.
"""

from noa_core import __version__

#: The default project image (built by docker/build.sh, which tags ``noa-core:VERSION-cpu``).
PROJECT_IMAGE = f"noa-core:{__version__}-cpu"

__all__ = ["PROJECT_IMAGE"]
