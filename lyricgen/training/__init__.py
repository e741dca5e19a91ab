"""Training: the data a run trains and validates on (data), its counters (state), the loop with its
stopping rules and checkpoint writing (trainer), and starting or resuming a run in a directory with
every check the command line relies on (run)."""
