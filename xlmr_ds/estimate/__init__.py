"""Cost models: FLOPs per sequence (flops.py), model-state memory under ZeRO (memory.py), and whole-run plans
(planning.py) for `xlmr-ds info` and `xlmr-ds plan`. They build models on the meta device only."""
