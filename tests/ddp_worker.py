"""Started by test_distributed.py under torchrun: one rank of a data-parallel run through the library,
which then saves this rank's final weights as OUT/rank<R>.pt (only rank 0 writes the run's files).

    torchrun --standalone --nproc-per-node 2 tests/ddp_worker.py CORPUS OUT OPTIONS_JSON
"""
import json
import sys
from pathlib import Path

import torch

from lyricgen.config import RunConfig
from lyricgen.training.distributed import from_env
from lyricgen.training.run import open_run


def main(corpus: str, out: str, options: str) -> None:
    torch.set_num_threads(1)
    world = from_env(torch.device("cpu"))
    try:
        trainer = open_run(RunConfig(corpus=corpus, out=out, device="cpu"), json.loads(options), world=world)
        trainer.run()
        Path(out).mkdir(parents=True, exist_ok=True)  # rank 0 makes it on its first save; this rank may be first
        torch.save(trainer.model.state_dict(), Path(out) / f"rank{world.rank}.pt")
    finally:
        world.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
