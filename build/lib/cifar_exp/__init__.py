"""cifar_exp: the 2017 CIFAR-100 report's experiments as Hydra-composed Keras runs tracked in MLflow."""

__version__ = "0.1.0"
