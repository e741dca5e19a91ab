"""Modern Chinese word vectors, for themes (writing/theme.py): 129,691 words of 75 dimensions.

They come from the `cnsyn` wheel (Apache-2.0, https://github.com/shangfr/Chinese-Synonyms; the
extra `theme`), which keeps them as the data of a scikit-learn BallTree in a joblib pickle
(cnsyn/query/words_tree_mini.m, with the word list beside the tree). The first use converts them
once into the private cache directory (fileio.cache_dir):

    wordvectors-cnsyn-1.2.0.npy     (N, 75) float16, each row of unit length
    wordvectors-cnsyn-1.2.0.txt     the N words, one a line, UTF-8

and from then on only those plain files are read (np.load without pickles). The conversion reads
the pickle with a restricted unpickler: it builds numpy arrays and nothing else. Every other class
the pickle names (the BallTree, its distance metric) becomes an inert placeholder; no module is
imported for it and none of its code runs. Neither cnsyn itself nor scikit-learn is imported.
"""
import importlib.metadata
import io
import pickle
import sys
from pathlib import Path

from ..errors import LyricgenError
from ..fileio import atomic_write, cache_dir

SOURCE = "cnsyn"
SOURCE_VERSION = "1.2.0"
TREE_FILE = "cnsyn/query/words_tree_mini.m"
CACHE_STEM = f"wordvectors-{SOURCE}-{SOURCE_VERSION}"
MISSING = "themes need the word vectors of cnsyn: pip install 'lyricgen[theme]'"

# numpy's own reconstruction of arrays and dtypes: the only callables the pickle may reach
_NUMPY = {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
          ("numpy._core.multiarray", "_reconstruct")}
_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")


class Opaque:
    """Whatever the pickle names besides numpy (find_class makes one subclass per name): called, it
    records its arguments and state and runs nothing."""

    def __init__(self, *args, **kwargs):
        self.args, self.state = args, None

    def __setstate__(self, state):
        self.state = state


class ArrayWrapper:
    """joblib's NumpyArrayWrapper: its state says the array's dtype, shape and order; the raw bytes
    follow the BUILD opcode in the file itself."""

    def __setstate__(self, state):
        self.__dict__.update(state)


class TreeUnpickler(pickle._Unpickler):  # the Python unpickler: its BUILD can be extended, as joblib does
    dispatch = pickle._Unpickler.dispatch.copy()

    def __init__(self, file):
        super().__init__(file)
        self.file_handle = file

    def find_class(self, module, name):
        if (module, name) in _NUMPY:
            return super().find_class(module, name)
        if (module, name) == _WRAPPER:
            return ArrayWrapper
        return type(f"Opaque({module}.{name})", (Opaque,), {})

    def load_build(self):
        pickle._Unpickler.load_build(self)
        if isinstance(self.stack[-1], ArrayWrapper):
            self.stack[-1] = read_array(self.stack[-1], self.file_handle)

    dispatch[pickle.BUILD[0]] = load_build


def read_array(wrapper: ArrayWrapper, file):
    """The array whose raw bytes start at `file`'s position (joblib's layout: one byte giving the
    padding's length, then the padding, in files written by joblib >= 1.2; nothing before)."""
    import numpy as np

    dtype = np.dtype(wrapper.dtype)
    if dtype.hasobject:
        raise LyricgenError("word vectors: the pickle holds an array of Python objects; refused")
    if getattr(wrapper, "numpy_array_alignment_bytes", None) is not None:
        file.read(file.read(1)[0])
    count = int(np.prod(wrapper.shape))
    data = file.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise LyricgenError("word vectors: the pickle ends inside an array")
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(wrapper.shape, order="F" if wrapper.order == "F" else "C")


def read_tree(path):
    """(words, vectors (N, D) float array) from a joblib pickle of {'model': BallTree, 'words': [...]}:
    the tree's data is the first array of its state."""
    with open(path, "rb") as f:
        obj = TreeUnpickler(io.BufferedReader(f, buffer_size=1 << 20)).load()
    words = obj.get("words") if isinstance(obj, dict) else None
    model = obj.get("model") if isinstance(obj, dict) else None
    state = model.state if isinstance(model, Opaque) else None
    data = state[0] if isinstance(state, tuple) and state else None
    if not isinstance(words, list) or getattr(data, "ndim", 0) != 2 or len(data) != len(words):
        raise LyricgenError(f"word vectors: {path} is not the tree of words it should be")
    return words, data


def convert(tree_path, out_stem: Path) -> None:
    """The tree at `tree_path` -> out_stem.npy (unit rows, float16) and out_stem.txt (the words)."""
    import numpy as np

    words, data = read_tree(tree_path)
    data = data.astype(np.float32)
    data /= np.maximum(np.linalg.norm(data, axis=1, keepdims=True), 1e-12)
    if any("\n" in w for w in words):
        raise LyricgenError("word vectors: a word holds a line break")
    atomic_write(_file(out_stem, ".npy"), lambda f: np.save(f, data.astype(np.float16)), "word vectors")
    atomic_write(_file(out_stem, ".txt"), "\n".join(words).encode("utf-8"), "word list")


def source_tree() -> Path:
    """The installed cnsyn's tree file (cnsyn is never imported: its import loads the tree itself)."""
    try:
        dist = importlib.metadata.distribution(SOURCE)
    except importlib.metadata.PackageNotFoundError:
        raise LyricgenError(MISSING) from None
    if dist.version != SOURCE_VERSION:
        raise LyricgenError(f"themes need cnsyn {SOURCE_VERSION}, found {dist.version}: pip install "
                            "'lyricgen[theme]'")
    path = Path(dist.locate_file(TREE_FILE))
    if not path.is_file():
        raise LyricgenError(f"cnsyn is installed but {TREE_FILE} is missing; reinstall it")
    return path


class WordVectors:
    """Words and their unit vectors (N, D) float16; lookups by word."""

    def __init__(self, words: list[str], vectors):
        self.words, self.vectors = words, vectors
        self.index = {w: i for i, w in enumerate(words)}

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def vector(self, word: str):
        return self.vectors[self.index[word]]

    def nearest(self, query, k: int, allow=None) -> list[tuple[str, float]]:
        """The k words whose vectors are closest to `query` (D,) by cosine, best first, among the
        words for which allow(word) holds (all words when None)."""
        import numpy as np

        q = np.asarray(query, dtype=np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        sims = self.vectors @ q.astype(self.vectors.dtype)
        out = []
        for i in np.argsort(-sims.astype(np.float32), kind="stable"):
            w = self.words[i]
            if allow is None or allow(w):
                out.append((w, float(sims[i])))
                if len(out) == k:
                    break
        return out


_loaded: dict[Path, WordVectors] = {}


def _file(stem: Path, suffix: str) -> Path:
    return stem.parent / (stem.name + suffix)


def load(stem: Path | None = None) -> WordVectors:
    """The vectors from the cache (converted from the installed cnsyn on first use), loaded once per process."""
    import numpy as np

    stem = stem or cache_dir() / CACHE_STEM
    if stem in _loaded:
        return _loaded[stem]
    if not (_file(stem, ".npy").is_file() and _file(stem, ".txt").is_file()):
        tree = source_tree()
        print(f"lyricgen: converting cnsyn's word vectors once into {stem.parent} ...", file=sys.stderr)
        convert(tree, stem)
    vectors = np.load(_file(stem, ".npy"), allow_pickle=False)
    words = _file(stem, ".txt").read_text(encoding="utf-8").split("\n")
    if vectors.ndim != 2 or len(words) != len(vectors):
        raise LyricgenError(f"word vectors in {stem.parent} are damaged; delete {stem.name}.* to convert again")
    _loaded[stem] = WordVectors(words, vectors)
    return _loaded[stem]
