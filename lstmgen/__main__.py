"""`python -m lstmgen`: the command line."""

from lstmgen.cli.main import main

main(prog_name="lstmgen")
