import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "engine"))
from corpus_factory import write_corpus  # noqa: E402
from launch import model_args, train  # noqa: E402  (tests/engine/launch.py)

from xlmr_ds.prep.spm.train import train_sentencepiece  # noqa: E402

# Every process a test starts can load the test-only plugins (fault injection, fp16 on CPU) that its
# environment asks for: tests/plugins/sitecustomize.py.
PLUGINS = Path(__file__).parent / "plugins"
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")]))
# Nothing may come from a model hub: tests build their models and data themselves.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Without a GPU the Triton kernels run in Triton's CPU interpreter. Triton reads this when a kernel module is
# imported, so it is set here, before any test module imports one.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; run on the GPU machine (benchmarks/GPU.md has the command)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


LINES = {"en": 1200, "ru": 600, "el": 300, "ar": 200, "hi": 120, "zh": 80}


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), LINES)


@pytest.fixture(scope="session")
def spm_model(corpus_dir, tmp_path_factory) -> Path:
    prefix = tmp_path_factory.mktemp("spm") / "spm"
    train_sentencepiece(corpus_dir, prefix, vocab_size=500, sample_lines=2000, seed=0, progress=False)
    return Path(f"{prefix}.model")


@pytest.fixture(scope="session")
def binarized_dir(corpus_dir, spm_model, tmp_path_factory) -> Path:
    from xlmr_ds.prep.binarize import binarize_corpus
    from xlmr_ds.world import SingleProcess

    out = tmp_path_factory.mktemp("binarized") / "bin"
    binarize_corpus(corpus_dir, spm_model, out, SingleProcess(), progress=False)
    return out


CONFIGS = Path(__file__).parents[1] / "ds_configs"


@pytest.fixture(scope="session")
def training_args(binarized_dir):
    def make(stage: int, save: Path, steps: int, *extra: str) -> list[str]:
        return ["--deepspeed_config", str(CONFIGS / f"tiny_cpu_zero{stage}.json"), "--data", str(binarized_dir),
                "--model", "tiny", "--block-size", "64", "--steps", str(steps), "--save", str(save), *extra]
    return make


@pytest.fixture(scope="session")
def unbroken_runs(training_args, tmp_path_factory):
    """Reference runs, trained once per session: (stage, processes, launcher, model) -> save dir of 4 steps.
    Here rather than in tests/engine so that tests/multinode compares against the same cached runs."""
    cache = {}

    def get(stage: int, processes: int = 2, launcher: str = "deepspeed", model: str = "tiny") -> Path:
        key = (stage, processes, launcher, model)
        if key not in cache:
            save = tmp_path_factory.mktemp(f"unbroken-z{stage}-p{processes}-{launcher}-{model}")
            train(training_args(stage, save, 4, *model_args(model)), processes, launcher)
            cache[key] = save
        return cache[key]
    return get



@pytest.fixture(scope="session")
def pretrained_hf(spm_model, tmp_path_factory) -> Path:
    """A tiny randomly initialized XLM-R with the test tokenizer, as an `xlmr-ds export` directory."""
    from xlmr_ds.model import XLMRForMaskedLM, preset
    from xlmr_ds.model.hf import save_hf
    from xlmr_ds.tokenizer import XLMRTokenizer

    config = preset("tiny", vocab_size=XLMRTokenizer(spm_model).vocab_size, max_position_embeddings=130)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("pretrained") / "hf"
    save_hf(XLMRForMaskedLM(config), out, tokenizer_model=spm_model)
    return out
