"""Data-parallel training under torchrun: one process per CPU share or GPU, gradients averaged by
torch.nn.parallel.DistributedDataParallel.

    torchrun --standalone --nproc-per-node 2 -m lyricgen train --corpus songs.txt

torchrun starts the processes and gives each RANK, WORLD_SIZE and LOCAL_RANK; `from_env` joins them
into a process group (gloo on the CPU, NCCL on CUDA). Without those variables, or in a world of one,
it returns SINGLE, whose collectives do nothing, so a plain `lyricgen train` runs exactly as before.

The Trainer asks a World to agree on a number (every stop is an all_reduce MAX, so all
ranks stop at the same step), take rank 0's object (the validation result, so the schedule and early
stopping decide alike), gather every rank's object on rank 0 (RNG states for the checkpoint), and let
each node's first rank go first (it fills the node's token cache, the others then read it). How a
step is shared between the ranks is trainer.share and trainer.train_step.
"""
import os
from contextlib import contextmanager
from datetime import timedelta

import torch

from ..errors import LyricgenError

CLOSE_WAIT = timedelta(minutes=10)  # how long a rank done training waits for the others before it leaves


class World:
    """One process alone: rank 0 of 1. Every collective is the identity."""
    rank = 0
    world_size = 1
    local_rank = 0
    distributed = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_device(self, device: torch.device) -> torch.device:
        return device

    def agree_max(self, value: int) -> int:
        return value

    def broadcast(self, obj):
        return obj

    def gather(self, obj) -> list:
        return [obj]

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def wrap(self, model):
        return model

    @contextmanager
    def main_first(self):
        yield

    def close(self, clean: bool = True) -> None:
        pass


SINGLE = World()


class ProcessGroup(World):
    """This process's place in a torchrun job, over torch.distributed's default process group."""
    distributed = True

    def __init__(self, rank: int, world_size: int, local_rank: int, device_type: str):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.device_type = device_type

    def local_device(self, device: torch.device) -> torch.device:
        """On CUDA, LOCAL_RANK's GPU: one GPU per process."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    def _tensor(self, values) -> torch.Tensor:  # NCCL reduces tensors on the GPU only
        return torch.tensor(values, dtype=torch.float64, device=self.local_device(torch.device(self.device_type)))

    def agree_max(self, value: int) -> int:
        t = self._tensor([value])
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return int(t.item())

    def broadcast(self, obj):
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        """Every rank's obj, in rank order (all ranks receive the list; rank 0 writes it)."""
        out = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        torch.distributed.all_reduce(tensor)
        return tensor

    def wrap(self, model):
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.device_type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    @contextmanager
    def main_first(self):
        """Each node's local rank 0 runs the block first (it fills that node's token cache), then the
        node's other ranks (they read it)."""
        if self.local_rank != 0:
            torch.distributed.barrier()
        yield
        if self.local_rank == 0:
            torch.distributed.barrier()

    def close(self, clean: bool = True) -> None:
        """Leave the process group. After a clean run the ranks first wait for each other (rank 0 may
        still be saving): a rank that tore gloo down while another still used its connections died
        now and then with SIGABRT ("terminate called without an active exception"; 1 in 8 runs of
        tests/test_distributed.py). After an error no rank waits: the others may never come."""
        dist = torch.distributed
        if not dist.is_initialized():
            return
        if clean:
            try:
                dist.monitored_barrier(timeout=CLOSE_WAIT) if self.device_type == "cpu" else dist.barrier()
            except RuntimeError:  # a rank that never came: leave all the same
                pass
        dist.destroy_process_group()


def env_world_size(environ=os.environ) -> int:
    """WORLD_SIZE as torchrun sets it; 1 outside torchrun."""
    value = environ.get("WORLD_SIZE", "1") or "1"
    try:
        return int(value)
    except ValueError:
        raise LyricgenError(f"WORLD_SIZE must be a whole number, got {value!r}") from None


def from_env(device: torch.device, environ=os.environ) -> World:
    """SINGLE outside torchrun (or in a world of one); else join the job's process group."""
    world_size = env_world_size(environ)
    if world_size <= 1:
        return SINGLE
    try:
        rank, local_rank = int(environ["RANK"]), int(environ["LOCAL_RANK"])
    except (KeyError, ValueError):
        raise LyricgenError("WORLD_SIZE is set but RANK or LOCAL_RANK is missing: start data-parallel training "
                            "with torchrun") from None
    dist = torch.distributed
    if not dist.is_available():
        raise LyricgenError("this torch build has no torch.distributed: data-parallel training is unavailable")
    if device.type == "cuda":
        local_size = int(environ.get("LOCAL_WORLD_SIZE", world_size))
        if local_size > torch.cuda.device_count():
            raise LyricgenError(f"{local_size} processes per node but {torch.cuda.device_count()} CUDA devices: "
                                "use --nproc-per-node at most the GPU count, or --device cpu")
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        if not dist.is_gloo_available():
            raise LyricgenError("this torch build has no gloo backend: data-parallel training on the CPU is "
                                "unavailable")
        backend = "gloo"
    dist.init_process_group(backend)
    return ProcessGroup(rank, world_size, local_rank, device.type)
