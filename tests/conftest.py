"""Suite-wide settings: strict numpy semantics so silent broadcasting bugs fail loudly."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
# Tests compile at LLVM's -O0: XLA's own HLO passes (fusion, layout, the programs' arithmetic) all
# run as in production; only the machine code is less optimised. Compilation dominates the
# suite's tiny shapes, so this cuts its wall time by about a quarter; speed is measured in
# benchmarks/, never here. Set the flag yourself to test at another level.
if "--xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=0"
# Tests never write to the user's compilation cache (tests of the cache choose their own folder).
# One fresh folder serves the whole run, its workers and the commands they start (the variable is
# inherited): the programs several tests compile alike (the same tiny models and shapes) are
# compiled once per run. The process that made it removes it at the end.
_OWNER = "JAXATTN_TEST_CACHE_OWNER"
if "JAXATTN_COMPILATION_CACHE" not in os.environ:
    import tempfile

    os.environ["JAXATTN_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="jaxattn-test-cache-")
    os.environ[_OWNER] = str(os.getpid())

import jax  # noqa: E402

from jaxattn.runtime.compile_cache import enable_compilation_cache  # noqa: E402

enable_compilation_cache()


def pytest_unconfigure(config):
    if os.environ.get(_OWNER) == str(os.getpid()):
        import shutil

        shutil.rmtree(os.environ["JAXATTN_COMPILATION_CACHE"], ignore_errors=True)


jax.config.update("jax_numpy_rank_promotion", "raise")
