"""res2net_validate: the Res2Net50 model-zoo card as executable pytest acceptance criteria."""

__version__ = "0.1.0"

MODEL_NAME = "res2net50_14w_8s"
