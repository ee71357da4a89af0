"""cifar_exp's Hydra sweeper on Optuna's ask/tell API: ``python -m cifar_exp --multirun hydra/sweeper=optuna
+search=<space>``. See :mod:`.config` for its options and :mod:`._impl` for what it does."""
