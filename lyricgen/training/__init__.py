"""Training: the data a run trains and validates on (data), the loop with its one step for one
process or many, its stopping rules, the mixture weight's fit and checkpoint writing (trainer), the
processes of a torchrun job (distributed), starting or resuming a run in a directory with every check
the command line relies on (run), the run directory's file names (files) and its picture (plot). The
run's counters (RunState) are a checkpoint type (checkpoint.py)."""
