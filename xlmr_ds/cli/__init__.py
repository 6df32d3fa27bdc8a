"""Command-line interface: argument parsing and printing only; the work lives in the other packages."""
