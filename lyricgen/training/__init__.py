"""Training: the data a run trains and validates on (data), the loop with its stopping rules and
checkpoint writing (trainer), and starting or resuming a run in a directory with every check the
command line relies on (run). The run's counters (RunState) are a checkpoint type (checkpoint.py)."""
