"""Credits: the names a corpus's credit and title lines give (text/debris.py finds them), which
generation never writes unless the user did.

A name is banned one token at a time, as it would be completed: after a text that ends with a
proper prefix of a name, no token that starts with the rest of it; and never a token that holds a
whole name. For a character model that is "not the name's last character right after the others".

    ban = Credits(["周杰伦"]).ban(vocab.itos, user_text="")   # once per request
    banned_ids = ban.banned("我和周杰")                        # each step: the text so far -> ids
"""
from dataclasses import dataclass, field


@dataclass
class Credits:
    names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"names": list(self.names)}

    @classmethod
    def from_dict(cls, d: dict) -> "Credits":
        return cls(names=[str(n) for n in d.get("names") or () if len(str(n)) >= 2])

    def ban(self, tokens: list[str], user_text: str = "") -> "NameBan":
        """The ban for one request over a vocabulary's token strings (index = id); names that
        `user_text` (the start word, a first line) holds are allowed."""
        return NameBan([n for n in self.names if n not in user_text], tokens)


class NameBan:
    def __init__(self, names: list[str], tokens: list[str]):
        self.always: set[int] = set()  # tokens holding a whole name
        self.after: dict[str, set[int]] = {}  # prefix of a name -> tokens that would complete it
        for n in names:
            for i, tok in enumerate(tokens):
                if n in tok:
                    self.always.add(i)
            for k in range(1, len(n)):
                rest = n[k:]
                self.after.setdefault(n[:k], set()).update(
                    i for i, tok in enumerate(tokens) if tok.startswith(rest))
        self.longest = max((len(p) for p in self.after), default=0)

    def __bool__(self) -> bool:
        return bool(self.always or self.after)

    def banned(self, text: str) -> set[int]:
        """Token ids that would complete a name after `text` (the current line so far)."""
        out = set(self.always)
        for k in range(1, min(self.longest, len(text)) + 1):
            out |= self.after.get(text[-k:], set())
        return out
