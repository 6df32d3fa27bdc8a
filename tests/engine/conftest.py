import sys
from pathlib import Path

# Engine tests import the launch helpers as `from launch import ...`; the training fixtures that use them
# (training_args, unbroken_runs) live in tests/conftest.py, shared with tests/multinode.
sys.path.insert(0, str(Path(__file__).parent))
