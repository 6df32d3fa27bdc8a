"""The fine-tuning job as a module, for launchers (`deepspeed --module xlmr_ds.finetune`, `mpiexec -n N python
-m xlmr_ds.finetune`); the command line is xlmr_ds/cli/finetune.py."""

if __name__ == "__main__":
    from xlmr_ds.cli.finetune import main

    exit_code = main()
    from xlmr_ds.engine.guards.teardown import exit_process  # engine/guards/teardown.py says why

    exit_process(exit_code)
