"""Where and how programs run: devices, several processes (``jax.distributed``), the compilation
cache and compile counts, mixed precision, the launcher, atomic files and the run lock."""
