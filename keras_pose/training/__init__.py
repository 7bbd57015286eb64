"""Training: objectives (targets + per-output losses), the custom loop, and the model.fit path."""

from keras_pose.training.config import TrainConfig
from keras_pose.training.loop import Trainer, learning_rate_at, make_optimizer, train
from keras_pose.training.objectives import LossTerm, Objective, make_objective

__all__ = ["LossTerm", "Objective", "TrainConfig", "Trainer", "learning_rate_at", "make_objective",
           "make_optimizer", "train"]
