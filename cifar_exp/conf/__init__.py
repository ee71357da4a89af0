"""The Hydra configs, a package so Hydra finds them as ``pkg://cifar_exp.conf`` when the ``cifar-exp`` console
script (not ``python -m cifar_exp``) starts it."""
