"""Distillation losses: plain nn.Modules over tensors (teacher inputs are detached inside)."""
from .boundary import BoundaryLoss, boundary_map
from .connectors import Connector
from .cwd import ChannelWiseDivergence
from .distiller import Distiller
from .kd import LogitKD
from .pairwise import PairwiseLoss
from .relation import RelationLoss, pool_tokens, relation_memory_bound

CWD = ChannelWiseDivergence
SKDLoss = PairwiseLoss

__all__ = ["BoundaryLoss", "RelationLoss", "LogitKD", "ChannelWiseDivergence", "CWD", "PairwiseLoss", "SKDLoss",
           "Connector", "Distiller", "boundary_map", "pool_tokens", "relation_memory_bound"]
