"""``evaluate``: the Phase 1 criteria, baselines and skill on the test split; the gate."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components import PROJECT_IMAGE


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def evaluate(checkpoint: Input[Model], replay: Input[Dataset], tokenizer: Input[Model],
             tracking_uri: str, run_id: str, metrics: Output[Metrics], report: Output[Markdown],
             report_html: Output[HTML], gate: Output[Artifact], criteria: str = "",
             champion_model: str = "") -> NamedTuple("EvaluateOutputs",
                                                     [("passed", bool), ("criteria_hash", str)]):
    """``noa evaluate --checkpoint DIR --replay FILE --tokenizer DIR [--criteria PATH|URI]
    [--champion-model NAME] --tracking-uri URI --run-id ID``: logs into the training run and
    returns whether the gate passed. ``criteria`` '' = the built-in Phase 1 criteria; a path
    inside the image or ``s3://bucket/key``. ``champion_model`` names the registered model whose
    champion the challenger is compared with ('' = no champion rule)."""
    import json
    import shutil
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    from noa_core.evaluation.evaluate import GATE_FILE, REPORT_HTML, REPORT_MD, flatten_metrics
    from noa_core.evaluation.evaluate import evaluate as evaluate_stage
    from noa_core.tracking import champion_metrics

    champion = champion_metrics(tracking_uri, champion_model) if champion_model else None
    # The stage writes a directory (its files are logged into the run too); the artifacts are
    # copies of three of them, and the directory goes. Beside the outputs: a writable place.
    with tempfile.TemporaryDirectory(prefix="evaluate-", dir=Path(gate.path).parent) as tmp:
        out = Path(tmp)
        result = evaluate_stage(checkpoint.path, replay.path, tokenizer.path, out,
                                criteria=criteria or None, tracking_uri=tracking_uri,
                                run_id=run_id, champion_metrics=champion, progress=False)
        shutil.copyfile(out / GATE_FILE, gate.path)
        shutil.copyfile(out / REPORT_MD, report.path)
        shutil.copyfile(out / REPORT_HTML, report_html.path)
        doc = json.loads((out / GATE_FILE).read_text())
    for key, value in flatten_metrics(result["metrics"], result["gate"]).items():
        metrics.log_metric(key, float(value))
    gate.metadata.update({"passed": bool(doc["passed"]),
                          "failed": [c["name"] for c in doc["criteria"] if not c["passed"]]})
    outputs = namedtuple("EvaluateOutputs", ["passed", "criteria_hash"])
    return outputs(bool(doc["passed"]), str(doc["criteria_sha256"]))
