"""The training system: DeepSpeed lives here, and only here."""
