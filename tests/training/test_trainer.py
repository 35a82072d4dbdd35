"""The trainer on a tiny bootstrap: metrics contract, resume, non-finite guard, bf16, CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from noa_core.cli import main
from noa_core.config import NOAConfig
from noa_core.errors import TrainingError
from noa_core.training.checkpoint import load_model_checkpoint
from noa_core.training.trainer import STATE_FILE, Trainer, train, trim_log


def _cfg(cfg: NOAConfig, **training) -> NOAConfig:
    return cfg.model_copy(update={"training": cfg.training.model_copy(update=training)})


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_train_writes_the_contract_metrics_and_a_loadable_checkpoint(
        train_cfg: NOAConfig, train_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, tok = train_data
    m = train(train_cfg, data, tok, tmp_path, progress=False)
    for key in ("val_traj_mse", "val_persistence_mse", "steps", "skipped_nonfinite"):
        assert key in m
    assert m["steps"] == 4 and m["skipped_nonfinite"] == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 4
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert any("traj" in json.loads(line) for line in lines)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model, cfg, meta = load_model_checkpoint(tmp_path / "checkpoint")
    assert cfg == train_cfg and meta["info"]["step"] in (2, 4)
    assert not model.training


def test_resume_continues_bit_for_bit(train_cfg: NOAConfig, train_data: tuple[Path, Path],
                                      tmp_path: Path) -> None:
    data, tok = train_data
    straight = Trainer(train_cfg, data, tok, tmp_path / "a", progress=False)
    straight.fit()
    half = Trainer(train_cfg, data, tok, tmp_path / "b", progress=False)
    half.fit(until=2)
    resumed = Trainer(train_cfg, data, tok, tmp_path / "b", progress=False)
    resumed.resume()
    assert resumed.step == 2
    resumed.fit()
    a, b = _params(straight.model), _params(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nonfinite_batches_are_skipped_then_abort(train_cfg: NOAConfig,
                                                  train_data: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    data, tok = train_data
    trainer = Trainer(_cfg(train_cfg, nonfinite_abort=3), data, tok, tmp_path, progress=False)
    rows = torch.arange(4)
    clean = trainer.train_ds._memory.clone()
    trainer.train_ds._memory[0] = float("nan")  # one operator's ground truth poisoned
    before = _params(trainer.model)
    assert trainer.train_step(rows) is None
    assert trainer.skipped == 1
    after = _params(trainer.model)
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing was applied
    trainer.train_ds._memory.copy_(clean)
    assert trainer.train_step(rows) is not None and trainer.consecutive_skips == 0
    trainer.train_ds._memory[0] = float("nan")
    with pytest.raises(TrainingError, match="3 consecutive steps had a non-finite"):
        for _ in range(3):
            trainer.train_step(rows)


def test_a_batch_above_the_train_split_is_refused(train_cfg: NOAConfig,
                                                  train_data: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    data, tok = train_data
    with pytest.raises(TrainingError, match=r"the train split holds \d+ operators, fewer than "
                                            "training.batch_size 1000"):
        Trainer(_cfg(train_cfg, batch_size=1000), data, tok, tmp_path, progress=False)


def test_an_output_path_that_is_a_file_is_refused(train_cfg: NOAConfig,
                                                  train_data: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("a file")
    with pytest.raises(TrainingError, match="out: exists and is not a directory"):
        Trainer(train_cfg, *train_data, out, progress=False)
    assert out.read_text() == "a file"


def test_bf16_autocast_runs_on_cpu(train_cfg: NOAConfig, train_data: tuple[Path, Path],
                                   tmp_path: Path) -> None:
    data, tok = train_data
    trainer = Trainer(_cfg(train_cfg, amp="bf16"), data, tok, tmp_path, progress=False)
    out = trainer.train_step(torch.arange(4))
    assert out is not None and all(torch.isfinite(torch.tensor(v)) for v in out.values())


def test_vq_led_mode_trains(train_cfg: NOAConfig, train_data: tuple[Path, Path],
                            tmp_path: Path) -> None:
    data, tok = train_data
    trainer = Trainer(_cfg(train_cfg, loss_mode="vq_led"), data, tok, tmp_path, progress=False)
    out = trainer.train_step(torch.arange(4))
    assert out is not None and out["recon"] > 0 and out["total"] > 0


def test_cli_train(train_config_path: Path, train_data: tuple[Path, Path], tmp_path: Path,
                   capsys: pytest.CaptureFixture[str]) -> None:
    data, tok = train_data
    assert main(["train", "--config", str(train_config_path), "--replay", str(data),
                 "--tokenizer", str(tok), "--out", str(tmp_path), "--max-steps", "2",
                 "--no-progress"]) == 0
    assert "2 steps (0 skipped as non-finite)" in capsys.readouterr().out


def test_cli_resume_says_where_it_continues_from(train_config_path: Path,
                                                 train_data: tuple[Path, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data, tok = train_data
    args = ["train", "--config", str(train_config_path), "--replay", str(data),
            "--tokenizer", str(tok), "--out", str(tmp_path), "--no-progress", "--resume"]
    assert main([*args, "--max-steps", "2"]) == 0  # nothing to resume yet: said so
    first = capsys.readouterr()
    assert "state.pt does not exist; training starts at step 0" in first.err
    assert "2 steps" in first.out
    assert main([*args, "--max-steps", "3"]) == 0
    second = capsys.readouterr()
    assert "state.pt at step 2 of 3" in second.err and "3 steps" in second.out
    assert main([*args[:-1], "--max-steps", "1"]) == 0  # no --resume: replacing is said
    third = capsys.readouterr()
    assert "state.pt exists: this training starts afresh at step 0 and has replaced" in third.err
    assert "1 steps" in third.out


def _train_steps(out: Path) -> list[int]:
    """Steps of the training records (not validation) in OUT/metrics.jsonl, in file order."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in records if "val" not in r]


def test_a_fresh_run_keeps_nothing_of_the_one_it_replaces(
        train_cfg: NOAConfig, train_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, tok = train_data
    train(_cfg(train_cfg, max_steps=4), data, tok, tmp_path, progress=False)
    assert _train_steps(tmp_path) == [1, 2, 3, 4]
    train(_cfg(train_cfg, max_steps=1), data, tok, tmp_path, progress=False)
    assert _train_steps(tmp_path) == [1]  # appended to the first run's records before
    assert load_model_checkpoint(tmp_path / "checkpoint")[2]["info"]["step"] == 1
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 1


def test_resume_drops_the_log_records_of_the_steps_it_repeats(
        train_cfg: NOAConfig, train_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, tok = train_data
    cfg = _cfg(train_cfg, max_steps=4, log_every=1)
    first = Trainer(cfg, data, tok, tmp_path, progress=False)
    first.fit(until=2)
    at_two = (tmp_path / STATE_FILE).read_bytes()
    first.fit(until=3)  # step 3 logged; then "killed" before its state: the state is step 2's
    (tmp_path / STATE_FILE).write_bytes(at_two)
    assert _train_steps(tmp_path) == [1, 2, 3]
    second = Trainer(cfg, data, tok, tmp_path, progress=False)
    second.resume()
    assert second.step == 2 and _train_steps(tmp_path) == [1, 2]
    second.fit()
    assert _train_steps(tmp_path) == [1, 2, 3, 4]


def test_trimming_the_log_drops_a_torn_last_line_and_refuses_other_damage(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "metrics.jsonl"
    good = [json.dumps({"step": s, "total": 0.5}) for s in (1, 2, 3)]
    log.write_text("\n".join([*good, '{"step": 4, "tot']))  # killed while appending step 4
    trim_log(log, 2)
    assert log.read_text() == good[0] + "\n" + good[1] + "\n"
    assert "dropped its last line, cut short" in capsys.readouterr().err
    log.write_text("\n".join([good[0], "[1, 2]", good[2]]) + "\n")
    with pytest.raises(TrainingError, match=r"metrics\.jsonl: line 2 is not a JSON record"):
        trim_log(log, 3)


def test_the_set_up_shows_its_target_computation(
        train_cfg: NOAConfig, train_data: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    data, tok = train_data
    trainer = Trainer(train_cfg, data, tok, tmp_path, progress=True)
    err = capsys.readouterr().err
    n = len(trainer.train_ds)  # one read of the split, every K's targets: counted per operator
    assert "alignment targets: 100%" in err and f"{n}/{n} [" in err
    Trainer(train_cfg, data, tok, tmp_path, progress=False)
    assert "alignment targets" not in capsys.readouterr().err


def test_the_alignment_weights_ramp_in_over_their_warm_up(train_data: tuple[Path, Path],
                                                         train_cfg: NOAConfig,
                                                         tmp_path: Path) -> None:
    """total = λ_traj·L_traj + a·(λ_latent·L_latent + λ_commit·L_commit + λ_heads·L_heads) with
    a = (step + 1)/warm-up, then 1."""
    from noa_core.training.trainer import alignment_factor

    cfg = _cfg(train_cfg, alignment_warmup=4)
    assert [alignment_factor(cfg.training, s) for s in range(6)] == [0.25, 0.5, 0.75, 1, 1, 1]
    assert alignment_factor(train_cfg.training, 0) == 1.0  # no warm-up by default
    data, tok = train_data
    trainer = Trainer(cfg, data, tok, tmp_path, progress=False)
    w = cfg.training.weights
    rows = torch.arange(4)
    with torch.no_grad():
        for step, a in ((0, 0.25), (9, 1.0)):
            trainer.step = step
            t = trainer.losses(rows)
            aligned = w.latent * t["latent"] + w.commit * t["commit"] + w.heads * t["heads"]
            torch.testing.assert_close(t["total"], w.traj * t["traj"] + a * aligned)


def _fit_on_a_fake_clock(trainer: Trainer, monkeypatch: pytest.MonkeyPatch,
                         step_s: list[float], val_s: float, save_s: float) -> dict[str, Any]:
    """``trainer.fit()`` on a clock that moves only when a step (``step_s`` in turn), a
    validation or a state save bills its seconds."""
    import noa_core.training.trainer as trainer_module

    clock = {"now": 0.0}
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: clock["now"])
    real_step, real_validate, real_save = (trainer.train_step, trainer.validate,
                                           trainer._save_state)

    def billed(seconds: Callable[[], float], real: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            clock["now"] += seconds()
            return real(*args, **kwargs)
        return run

    monkeypatch.setattr(trainer, "train_step",
                        billed(lambda: step_s[trainer.step % len(step_s)], real_step))
    monkeypatch.setattr(trainer, "validate", billed(lambda: val_s, real_validate))
    monkeypatch.setattr(trainer, "_save_state", billed(lambda: save_s, real_save))
    return trainer.fit()


def test_the_time_budget_stops_before_a_step_would_overrun_it(
        train_cfg: NOAConfig, train_data: tuple[Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On a fake clock where every step takes 7 s and every validation 13 s, a 1-minute
    budget ends with the loop's time (closing validation included) inside the minute, and
    only when one more step and validation would not fit."""
    data, tok = train_data
    cfg = _cfg(train_cfg, max_steps=100, max_minutes=1.0, val_every=4, checkpoint_every=100)
    trainer = Trainer(cfg, data, tok, tmp_path, progress=False)
    metrics = _fit_on_a_fake_clock(trainer, monkeypatch, [7.0], val_s=13.0, save_s=0.0)
    # steps 1–4 (28 s) + validation (13 s) = 41 s; step 5 would need 41 + 7 + 13 = 61 s > 60
    assert metrics["steps"] == 4
    assert metrics["train_seconds"] <= 60.0
    assert metrics["train_seconds"] + 7.0 + 13.0 > 60.0


def test_the_time_budget_plans_with_the_longest_recent_step_and_the_closing_save(
        train_cfg: NOAConfig, train_data: tuple[Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake clock: steps take 3, 3, 3, 8 s in turn, a validation 13 s, a state save 3 s, both
    every 4 steps. Planned with the last step and the validation alone, the run would take step
    8 (8 s) at 42 s and end at 69 s; planned with the longest recent step and the save it stops
    after step 6 and ends at 55 s."""
    data, tok = train_data
    cfg = _cfg(train_cfg, max_steps=100, max_minutes=1.0, val_every=4, checkpoint_every=4)
    trainer = Trainer(cfg, data, tok, tmp_path, progress=False)
    metrics = _fit_on_a_fake_clock(trainer, monkeypatch, [3.0, 3.0, 3.0, 8.0], val_s=13.0,
                                   save_s=3.0)
    # steps 1-4 (17 s) + validation + save = 33 s, steps 5-6 → 39 s; step 7 is planned as 8 s
    # with 16 s of close: 63 s > 60. The close then bills 13 + 3 s.
    assert metrics["steps"] == 6
    assert metrics["train_seconds"] == 55.0


@pytest.mark.parametrize("offset", [None, 0, 5])
def test_the_features_backward_over_the_gradient_window_alone_loses_nothing(
        train_cfg: NOAConfig, train_data: tuple[Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, offset: int | None) -> None:
    """The alignment terms' features skip the backward of the states outside the TBPTT window
    (``grad_states``); their parameter gradients equal those of the whole window's."""
    import noa_core.training.trainer as trainer_module

    data, tok = train_data
    trainer = Trainer(_cfg(train_cfg, tbptt_window=4), data, tok, tmp_path, progress=False)
    rows = torch.arange(4)

    def alignment_grads() -> dict[str, torch.Tensor]:
        trainer.model.zero_grad(set_to_none=True)
        terms = trainer.losses(rows, offset=offset)
        (terms["latent"] + terms["commit"]).backward()
        return {n: p.grad.clone() for n, p in trainer.model.named_parameters()
                if p.grad is not None}

    window_only = alignment_grads()
    monkeypatch.setattr(trainer_module, "grad_states", lambda *args: None)
    whole = alignment_grads()
    assert window_only.keys() == whole.keys() and whole
    assert sum(float(g.norm()) for g in whole.values()) > 0
    for name, g in whole.items():
        torch.testing.assert_close(window_only[name], g, rtol=1e-4, atol=1e-7, msg=name)
