"""``curves.png`` from metrics.jsonl: what each panel draws, resumed logs, bad logs."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from noa_core.errors import TrainingError
from noa_core.training.curves import (
    curves_figure,
    plot_training_curves,
    read_log,
    write_curves_html,
)


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _val(step: int, noa: float, pers: float, **policies: tuple[float, float]) -> dict:
    return {"step": step, "val": {
        "val_traj_mse": noa, "val_persistence_mse": pers,
        "by_policy": {p: {"traj_mse": a, "persistence_mse": b} for p, (a, b) in policies.items()}}}


def test_panels_draw_every_loss_term_and_each_policy_beside_persistence() -> None:
    train = [{"step": s, "traj": 1.0 / s, "latent": 0.1, "commit": 0.01, "total": 2.0 / s}
             for s in (10, 20, 30)]
    val = [_val(20, 0.05, 0.04, convex=(0.1, 0.12), residual=(0.02, 0.03)),
           _val(30, 0.03, 0.04, convex=(0.09, 0.12), residual=(0.01, 0.03))]
    loss_ax, val_ax = curves_figure(train, val).axes
    smooth = {line.get_label(): line for line in loss_ax.lines
              if not line.get_label().startswith("_")}
    assert sorted(smooth) == ["commit", "latent", "total", "traj"]
    assert len(loss_ax.lines) == 2 * len(smooth)  # each as logged, and its running mean
    assert list(smooth["traj"].get_ydata()) == pytest.approx([1 / 10, (1 / 10 + 1 / 20) / 2,
                                                              (1 / 10 + 1 / 20 + 1 / 30) / 3])
    lines = {line.get_label(): line for line in val_ax.lines}
    assert sorted(lines) == sorted(f"{who}, {p}" for who in ("NOA", "persistence")
                                   for p in ("all", "convex", "residual"))
    assert list(lines["NOA, convex"].get_xdata()) == [20, 30]
    assert list(lines["NOA, convex"].get_ydata()) == [0.1, 0.09]
    assert lines["NOA, residual"].get_color() == lines["persistence, residual"].get_color()


def test_a_resumed_log_keeps_the_later_record_of_a_repeated_step(tmp_path: Path) -> None:
    log = _write(tmp_path / "metrics.jsonl", [
        {"step": 10, "traj": 0.5}, {"step": 20, "traj": 0.4}, _val(20, 0.3, 0.2),
        {"step": 20, "traj": 0.1}, _val(20, 0.05, 0.2), {"step": 30, "traj": 0.05}])
    train, val = read_log(log)
    assert [(r["step"], r["traj"]) for r in train] == [(10, 0.5), (20, 0.1), (30, 0.05)]
    assert [r["val"]["val_traj_mse"] for r in val] == [0.05]


def test_nonpositive_and_nonfinite_values_are_left_off_a_log_axis(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "traj": 0.0, "latent": NaN}\n{"step": 2, "traj": 0.5}\n')
    loss_ax, _ = curves_figure(*read_log(log)).axes
    assert [list(line.get_xdata()) for line in loss_ax.lines] == [[2], [2]]
    out = plot_training_curves(log, tmp_path / "curves.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(("text", "expected"), [
    ('{"step": 1, "traj": 0.5}\n{"step": 2, "traj": \n', "line 2: not JSON"),
    ('{"traj": 0.5}\n', "line 1: expected a record with an integer 'step'"),
    ('{"step": "3"}\n', "line 1: expected a record with an integer 'step'"),
    ('{"step": 3, "val": 0.1}\n', "line 1: 'val' must be a mapping"),
    ("\n", "no training or validation records"),
])
def test_a_bad_log_is_refused_naming_the_file_and_line(tmp_path: Path, text: str,
                                                        expected: str) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_text(text)
    with pytest.raises(TrainingError, match=expected) as err:
        plot_training_curves(log, tmp_path / "curves.png")
    assert str(log) in str(err.value)
    assert not (tmp_path / "curves.png").exists()
    assert not list(tmp_path.glob(".*"))  # no temporary left behind either


def test_the_html_page_embeds_the_png_and_a_missing_png_is_named(tmp_path: Path) -> None:
    log = _write(tmp_path / "metrics.jsonl", [{"step": 1, "traj": 0.5}, _val(1, 0.1, 0.2)])
    png = plot_training_curves(log, tmp_path / "curves.png")
    page = write_curves_html(png, tmp_path / "curves.html").read_text()
    embedded = page.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    assert base64.b64decode(embedded) == png.read_bytes()
    assert "<script" not in page and "http" not in page
    with pytest.raises(TrainingError, match="no training curves to embed") as err:
        write_curves_html(tmp_path / "absent.png", tmp_path / "other.html")
    assert "absent.png" in str(err.value) and not (tmp_path / "other.html").exists()
