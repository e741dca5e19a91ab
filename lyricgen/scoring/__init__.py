"""Scoring: held-out perplexity and open-vocabulary bits per character of a model and its side
models (score), and scoring a text file with a checkpoint (evaluate). The side models themselves
(unk, repeat, the n-gram mixture) are fitted beside the network: see fitted/."""
