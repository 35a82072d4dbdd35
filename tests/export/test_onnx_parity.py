"""ONNX export of the step: standard DFT ops, dynamic batch, parity with ONNX Runtime."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from noa_core.config import load_config
from noa_core.export import check_parity, export_step, step_inputs
from noa_core.export.onnx_export import (
    context_path,
    export_context_encoder,
    rollout_parity,
    run_onnx,
    session,
)
from noa_core.export.predict import encode_context
from noa_core.models import NOABackbone, StepModule, build_model, perturb_zero_layers
from noa_core.models.afno import SpectralFilter, fft_transforms

CFG = load_config("tiny")
C, G, K = CFG.dynamics.channels, CFG.dynamics.grid, CFG.model.context_max
TOLERANCE = 1e-4  # of each sample's field standard deviation


def _inputs(model: NOABackbone, b: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(b, 12, generator=g)
    u = torch.randn(b, C, G, G, generator=g)
    context = torch.cat([torch.randn(b, K, C, G, G, generator=g), u[:, None]], dim=1)
    return step_inputs(model, theta, u, context)  # u_0 … u_K, ending at u


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[NOABackbone, Path]:
    """The tiny NOA, conditioning re-initialised non-zero, exported once at batch 2."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = build_model(CFG)
        assert perturb_zero_layers(model, 0.1, torch.Generator().manual_seed(1)) > 0
        model.set_field_stats(torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.7]))
        model.set_field_stats(torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.7]),
                              torch.tensor([0.1, 0.2]))
        path = export_step(model, tmp_path_factory.mktemp("onnx") / "step.onnx",
                           _inputs(model, 2, seed=0))
        g = torch.Generator().manual_seed(9)
        export_context_encoder(model, context_path(path), torch.randn(2, K + 1, C, G, G,
                                                                      generator=g))
    finally:
        torch.set_num_threads(threads)
    return model, path


def test_the_graph_uses_standard_dft_ops(exported: tuple[NOABackbone, Path]) -> None:
    graph = onnx.load(str(exported[1]))
    onnx.checker.check_model(graph)
    ops = {(n.domain or "ai.onnx", n.op_type) for n in graph.graph.node}
    assert ("ai.onnx", "DFT") in ops
    assert all(domain == "ai.onnx" for domain, _ in ops)  # no contrib (GPU-only) FFT ops
    assert [i.name for i in graph.graph.input] == ["theta", "context_embedding", "u",
                                                    "context_field"]
    encoder = onnx.load(str(context_path(exported[1])))
    onnx.checker.check_model(encoder)
    assert [i.name for i in encoder.graph.input] == ["context"]
    dims = [d.dim_param or d.dim_value for d in encoder.graph.input[0].type.tensor_type.shape.dim]
    assert all(isinstance(d, str) for d in dims[:2]) and dims[2:] == [C, G, G]  # B, K+1


@pytest.mark.parametrize("k", [1, K])
def test_the_exported_encoder_serves_every_k(exported: tuple[NOABackbone, Path], k: int) -> None:
    """One encoder graph for K = 1 … context_max, equal to torch; and an H-step rollout of
    encoder + step in ONNX Runtime alone equals the model's own rollout with that context."""
    model, path = exported
    g = torch.Generator().manual_seed(k)
    ctx = torch.randn(3, k + 1, C, G, G, generator=g)
    emb, field = encode_context(session(context_path(path)), ctx.numpy())
    with torch.no_grad():
        ref_emb, ref_field = model.eval().encode_context(ctx, 3)
    np.testing.assert_allclose(emb, ref_emb.numpy(), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(field, ref_field.numpy(), atol=1e-5, rtol=1e-4)
    theta = torch.rand(3, 12, generator=g)
    report = rollout_parity(model, path, theta, ctx[:, -1], 6, ctx)
    assert report["context"] == k and report["max_rel_error"] < TOLERANCE


def test_zero_context_inputs_give_the_context_free_step(exported: tuple[NOABackbone, Path]
                                                        ) -> None:
    model, path = exported
    g = torch.Generator().manual_seed(5)
    theta, u = torch.rand(3, 12, generator=g), torch.randn(3, C, G, G, generator=g)
    feeds = step_inputs(model, theta, u)  # K = 0: zero embedding and field
    assert not feeds["context_field"].any() and not feeds["context_embedding"].any()
    with torch.no_grad():
        ref = model.eval().step(u, theta)
    torch.testing.assert_close(run_onnx(path, feeds), ref, atol=1e-5, rtol=1e-5)
    assert (run_onnx(path, _inputs(model, 3, seed=5)) - ref).abs().max() > 1e-4


@pytest.mark.parametrize("batch", [3, 1])
def test_onnx_runtime_matches_torch_at_another_batch(exported: tuple[NOABackbone, Path],
                                                     batch: int) -> None:
    model, path = exported
    inputs = _inputs(model, batch, seed=batch)
    assert inputs["context_embedding"].abs().max() > 0  # the context path is really exercised
    err = check_parity(model, path, inputs)
    assert err < TOLERANCE
    with torch.no_grad():
        moved = StepModule(model.eval())(**inputs) - inputs["u"]
    assert moved.abs().max() > 1e-3  # the step is not the identity


def test_theta_changes_the_onnx_output(exported: tuple[NOABackbone, Path]) -> None:
    model, path = exported
    inputs = _inputs(model, 3, seed=4)
    other = dict(inputs, theta=inputs["theta"].flip(0))
    diff = run_onnx(path, inputs) - run_onnx(path, other)
    assert diff.abs().max() > 1e-4


def _filter_through_ort(filt: SpectralFilter, x: torch.Tensor, cond: torch.Tensor,
                        path: Path) -> tuple[torch.Tensor, set[str]]:
    """Export ``filt`` in its current transform form; (ONNX Runtime's output, the op types)."""
    import onnxruntime as ort

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch-internal deprecation noise
        program = torch.onnx.export(filt, (x, cond), dynamo=True, opset_version=20,
                                    input_names=["x", "cond"], verbose=False)
    program.save(str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"x": x.numpy(), "cond": cond.numpy()})
    return torch.from_numpy(got), {n.op_type for n in onnx.load(str(path)).graph.node}


def test_the_spectral_filter_with_truncated_modes_exports(tmp_path: Path) -> None:
    """16² with 4 modes: both k_y bands are cut out and padded back (the presets keep every
    mode of their bottleneck, so the step graph above never takes this branch). Exported in
    its FFT form, as ``export_step`` does; compared with the torch default, the DFT matrices."""
    torch.manual_seed(0)
    filt = SpectralFilter(8, 2, 1.0, 4, 0.01, 4).eval()
    perturb_zero_layers(filt, 0.1, torch.Generator().manual_seed(1))
    x, cond = torch.randn(2, 8, 16, 16), torch.randn(2, 4)
    with fft_transforms(filt):
        got, ops = _filter_through_ort(filt, x, cond, tmp_path / "afno.onnx")
    assert "DFT" in ops
    with torch.no_grad():
        ref = filt(x, cond)
    assert ref.abs().max() > 1e-2
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_the_dft_matrix_form_exports_and_leaves_no_traced_matrices_behind(
        tmp_path: Path) -> None:
    """The torch default exports too (GEMMs, no DFT node). Its matrices are cached; those built
    while the exporter traces are its fake tensors and must not be kept: an eager call on the
    same grid afterwards still works and equals the FFT form."""
    torch.manual_seed(0)
    filt = SpectralFilter(8, 2, 1.0, 4, 0.01, 4).eval()
    perturb_zero_layers(filt, 0.1, torch.Generator().manual_seed(2))
    x, cond = torch.randn(2, 8, 12, 12), torch.randn(2, 4)  # a grid no other test uses
    got, ops = _filter_through_ort(filt, x, cond, tmp_path / "afno_dft.onnx")
    assert "DFT" not in ops and "MatMul" in ops
    with torch.no_grad():
        eager = filt(x, cond)
        with fft_transforms(filt):
            ref = filt(x, cond)
    assert ref.abs().max() > 1e-2
    torch.testing.assert_close(eager, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
