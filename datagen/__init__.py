"""datagen: the application layer of datagen-gym, at the module path of the original design.

* :mod:`datagen.rl_tuning` - :class:`~datagen.rl_tuning.RLTuner`, which drives ``DataGen-v0``
  with any agent of :mod:`agents`, checkpoints and resumes, and writes the final dataset;
* :mod:`datagen.cli` - the ``datagen`` command (``generate``, ``rl-tune``, ``replay-build``).

Dependencies point one way: the library :mod:`datagen_gym` (config, backends, generators,
world, targets, envs, replay) <- the algorithms :mod:`agents` <- this package.
"""
