"""Fitted: what is fitted beside the network at training time and carried in the checkpoint.

One package, below checkpoint.py (which stores them) and above text/ (which they read):

    unk          UnkModel (unk.py): probability of a character never seen in training
    repeat       RepeatModel (repeat.py): lyrics repeat their choruses; scoring only
    originality  Originality (originality.py): hashes of the training lines, so generation can
                 report and avoid copying without the corpus
    habits       Habits (habits.py): line lengths, rhyme and sections of the corpus, which
                 generation follows; None in checkpoints older than them (Lyricist fills it in)
    mixture      Mixture (mixture.py, over the Kneser-Ney n-grams of ngram.py): the run's n-gram
                 and, after --init-from, the base's (a component of its own), mixed with the
                 network by weights fitted on validation; generation samples from that mixture
                 (None in checkpoints from before it)
    credits      Credits (credits.py): the names of the corpus's credit and title lines, which
                 generation does not write; None when none were found (or before them)
    reranker     Reranker (rerank.py): which of the line search's candidates a reader would choose,
                 fitted after training on the validation text (training/trainer.py, writing/judge.py);
                 None before it, or when there was no validation text to fit it on

Each has fit / to_dict / from_dict; `SideModels.fit` fits them all from the training part, except the
reranker, which needs the trained network.
"""
from dataclasses import dataclass, field

from .credits import Credits
from .habits import Habits
from .mixture import Mixture
from .originality import Originality
from .repeat import RepeatModel
from .rerank import Reranker
from .unk import UnkModel


@dataclass
class SideModels:
    unk: UnkModel = field(default_factory=UnkModel)
    repeat: RepeatModel = field(default_factory=RepeatModel)
    originality: Originality | None = None
    habits: Habits | None = None
    mixture: Mixture | None = None
    credits: Credits | None = None
    reranker: Reranker | None = None

    @classmethod
    def fit(cls, train_lines: list[str], train_ids, vocab, val_ids=(), names=()) -> "SideModels":
        """From the training part: the corpus's own lines (with --mix, without the mixed-in text: its
        habits and originality are the corpus's), and the token stream trained on (line breaks
        included; a list or a 1-D tensor); the mixture also from the validation ids (see mixture.py);
        `names` are those text/debris.py found in the corpus."""
        return cls(unk=UnkModel.fit(vocab, len(train_ids)), repeat=RepeatModel.fit(train_ids),
                   originality=Originality.fit(train_lines), habits=Habits.fit(train_lines, vocab),
                   mixture=Mixture.fit(train_ids, val_ids, len(vocab), vocab.line_break_id),
                   credits=Credits(list(names)) if names else None)

    def to_dict(self) -> dict:
        d = {"unk": self.unk.to_dict(), "repeat": self.repeat.to_dict()}
        if self.originality is not None:
            d["originality"] = self.originality.to_dict()
        if self.habits is not None:
            d["habits"] = self.habits.to_dict()
        if self.mixture is not None:
            d["mixture"] = self.mixture.to_dict()
        if self.credits is not None:
            d["credits"] = self.credits.to_dict()
        if self.reranker is not None:  # a checkpoint without one is written exactly as before
            d["reranker"] = self.reranker.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SideModels":
        return cls(unk=UnkModel.from_dict(d.get("unk", {})), repeat=RepeatModel.from_dict(d.get("repeat", {})),
                   originality=Originality.from_dict(d["originality"]) if d.get("originality") else None,
                   habits=Habits.from_dict(d["habits"]) if d.get("habits") else None,
                   mixture=Mixture.from_dict(d["mixture"]) if d.get("mixture") else None,
                   credits=Credits.from_dict(d["credits"]) if d.get("credits") else None,
                   reranker=Reranker.from_dict(d["reranker"]) if d.get("reranker") else None)
