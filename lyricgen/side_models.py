"""The small models fitted beside the network, in one place, and carried in the checkpoint.

    unk          UnkModel (scoring/unk.py): probability of a character never seen in training
    repeat       RepeatModel (scoring/repeat.py): lyrics repeat their choruses; scoring only
    originality  Originality (writing/originality.py): hashes of the training lines, so generation
                 can report and avoid copying without the corpus
    habits       Habits (writing/habits.py): line lengths, rhyme and sections of the corpus, which
                 generation follows; None in checkpoints older than them (Lyricist fills it in)

Each has fit / to_dict / from_dict; `SideModels.fit` fits them all from the training part.
"""
from dataclasses import dataclass, field

from .scoring.repeat import RepeatModel
from .scoring.unk import UnkModel
from .writing.habits import Habits
from .writing.originality import Originality


@dataclass
class SideModels:
    unk: UnkModel = field(default_factory=UnkModel)
    repeat: RepeatModel = field(default_factory=RepeatModel)
    originality: Originality | None = None
    habits: Habits | None = None

    @classmethod
    def fit(cls, train_lines: list[str], train_ids, vocab) -> "SideModels":
        """From the training part: its lines, and its token stream (line breaks included; a list or
        a 1-D tensor)."""
        return cls(unk=UnkModel.fit(vocab, len(train_ids)), repeat=RepeatModel.fit(train_ids),
                   originality=Originality.fit(train_lines), habits=Habits.fit(train_lines, vocab))

    def to_dict(self) -> dict:
        d = {"unk": self.unk.to_dict(), "repeat": self.repeat.to_dict()}
        if self.originality is not None:
            d["originality"] = self.originality.to_dict()
        if self.habits is not None:
            d["habits"] = self.habits.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SideModels":
        return cls(unk=UnkModel.from_dict(d.get("unk", {})), repeat=RepeatModel.from_dict(d.get("repeat", {})),
                   originality=Originality.from_dict(d["originality"]) if d.get("originality") else None,
                   habits=Habits.from_dict(d["habits"]) if d.get("habits") else None)
