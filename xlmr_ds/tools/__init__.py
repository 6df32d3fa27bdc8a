"""Tools around training runs: the throughput benchmark against Hugging Face (bench.py) and the run report
(report.py)."""
