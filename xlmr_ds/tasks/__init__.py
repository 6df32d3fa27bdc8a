"""Fine-tuning and evaluation tasks: reading their files (formats.py), encoding them for the model
(encoding.py), their settings (settings.py, task_config.py) and scores (results.py). No DeepSpeed here."""
