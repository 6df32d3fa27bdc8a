"""Test-only plugins for the processes the tests start: tests/conftest.py puts this folder on PYTHONPATH,
and Python imports this module before the program runs. Nothing is loaded unless the environment asks:

    XLMR_DS_FAULT=POINT:KEY:RANK:ACTION,...   xlmr_ds_faults.py: faults at named points of xlmr-ds
    XLMR_DS_TEST_PLUGINS=name,...             other modules of this folder, e.g. xlmr_ds_fp16_on_cpu

Production code carries no hook for either: the plugins wrap its functions from outside.
"""

import importlib
import os

if os.environ.get("XLMR_DS_FAULT"):
    importlib.import_module("xlmr_ds_faults").install()
for _name in filter(None, os.environ.get("XLMR_DS_TEST_PLUGINS", "").split(",")):
    importlib.import_module(_name.strip())
