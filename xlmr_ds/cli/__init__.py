"""Command-line interface: argument parsing and printing only; the work lives in the other packages.

Each subcommand imports the work it runs inside its run function when that work needs torch or DeepSpeed,
so that parsing, `--help` and a bad argument cost a fraction of a second, not the seconds torch takes."""
