"""The NOA Phase 1 Kubeflow pipeline (``noa_phase1``), its platform settings and its drivers
(compile, upload, submit, schedule, local run) behind ``noa pipeline``."""
