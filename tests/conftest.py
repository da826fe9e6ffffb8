"""Suite-wide settings: strict numpy semantics so silent broadcasting bugs fail loudly."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
# Tests never write to the user's compilation cache (tests of the cache choose their own folder).
os.environ.setdefault("JAXATTN_COMPILATION_CACHE", "off")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
