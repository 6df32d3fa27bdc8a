"""The training job as a module, for launchers that start one (`deepspeed --module xlmr_ds.train`,
`python -m xlmr_ds.train`, `mpiexec -n N python -m xlmr_ds.train`); the command line is xlmr_ds/cli/train.py."""

if __name__ == "__main__":
    from xlmr_ds.cli.train import main

    exit_code = main()
    # Not SystemExit: a finished job skips the interpreter's teardown, where gloo's worker threads can abort
    # the process after everything was written (engine/guards/teardown.py says why).
    from xlmr_ds.engine.guards.teardown import exit_process

    exit_process(exit_code)
