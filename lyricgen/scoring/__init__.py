"""Scoring: held-out perplexity and open-vocabulary bits per character (score), the side models
that complete the network's distribution for scoring (unk: unseen characters; repeat: choruses),
and scoring a text file with a checkpoint (evaluate)."""
