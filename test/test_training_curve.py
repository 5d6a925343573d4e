"""training.curve: the validation curve of runs from their log.jsonl (the model card's figure)."""

import json

import pytest

from training.curve import main, validation_curve


def _log(run, rows):
    run.mkdir()
    (run / "log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_curve_keeps_validation_rows_in_step_order_and_the_last_of_a_repeated_step(tmp_path, capsys):
    _log(tmp_path / "long", [{"step": 10, "loss": 1.0}, {"step": 500, "val_f1": 0.02}, {"step": 1000, "val_f1": 0.03},
                             {"step": 500, "val_f1": 0.025}])  # resumed before step 1000's checkpoint
    _log(tmp_path / "ablation", [{"step": 250, "val_f1": 0.01}])
    assert validation_curve(tmp_path / "long") == [(500, 0.025), (1000, 0.03)]
    assert main([str(tmp_path / "long"), str(tmp_path / "ablation"), "--out", str(tmp_path / "c.png"),
                 "--reference", "0.05"]) == 0
    table = capsys.readouterr().out
    assert "| long |  | 0.0250 | 0.0300 |" in table and "| ablation | 0.0100 |  |  |" in table
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_a_folder_without_a_log_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="log.jsonl"):
        validation_curve(tmp_path)


def test_the_matcher_runs_plot_their_validation_nll(tmp_path, capsys):
    _log(tmp_path / "matcher", [{"step": 250, "val_nll": 2.5, "val_precision": 0.5}, {"step": 500, "val_nll": 2.0}])
    assert validation_curve(tmp_path / "matcher", "val_nll") == [(250, 2.5), (500, 2.0)]
    assert main([str(tmp_path / "matcher"), "--metric", "val_nll", "--out", str(tmp_path / "m.png")]) == 0
    assert "| matcher | 2.5000 | 2.0000 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no 'val_f1' rows"):
        main([str(tmp_path / "matcher")])  # the SiLK metric on a matcher run: said, not an empty table
