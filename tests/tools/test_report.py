import json

import pytest

from xlmr_ds.errors import XLMRDSError
from xlmr_ds.tools.report import write_report


def _metrics(path, steps=5):
    lines = [{"type": "eval", "step": 0, "languages": {"en": {"loss": 6.0, "perplexity": 403.4, "accuracy": 0.0}}}]
    for step in range(1, steps + 1):
        lines.append({"type": "train", "step": step, "loss": 7.0 - step * 0.1, "lr": step * 1e-4,
                      "consumed_samples": 8 * step, "tokens_per_s": 1000.0 + step, "step_time_s": 0.5})
    lines.append({"type": "eval", "step": steps, "languages": {"en": {"loss": 5.0, "perplexity": 148.4,
                                                                      "accuracy": 0.1}}})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_report_has_plots_curves_perplexity_and_scale_up_commands(tmp_path):
    _metrics(tmp_path / "metrics.jsonl")
    report = write_report(tmp_path, tmp_path / "out" / "report.md")
    text = report.read_text()
    for png in ("loss.png", "lr.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({png})" in text
    assert "6.9000 at step 1 -> 6.5000 at step 5" in text
    assert "| en | 403.4 | 148.4 | 0.100 |" in text
    assert "tokens/s" in text and "deepspeed --hostfile hostfiles/two_nodes" in text and "xlmr-ds plan" in text


def test_report_needs_a_run_directory(tmp_path):
    with pytest.raises(XLMRDSError, match="metrics.jsonl: not found"):
        write_report(tmp_path, tmp_path / "report.md")
