"""Test-only: let DeepSpeed's CPU accelerator run fp16, so that the fp16 loss-scaler row runs without a GPU.

The accelerator reports fp16 as unsupported when oneDNN has no fast fp16 kernels for this CPU; torch still
computes fp16 on the CPU correctly (slowly), and the loss scaling and step skipping under test are DeepSpeed's
device-independent code. Loaded in a training process by XLMR_DS_TEST_PLUGINS=xlmr_ds_fp16_on_cpu
(sitecustomize.py), which tests/reliability/test_faults.py sets for its fp16 row only.
"""

from deepspeed.accelerator.cpu_accelerator import CPU_Accelerator

CPU_Accelerator.is_fp16_supported = lambda self: True
