"""Env sizes the tests share: small enough for a 2-core CI, large enough that a step usually
keeps some records."""

#: batch 8, 3-step episodes: env-level tests (spaces, observation, reset options, skills).
SMALL = {"batch_size": 8, "num_iterations": 3}
#: batch 4: tests that run many envs (vectorised, Ray) or many episodes (replay).
TINY_BATCH = 4
