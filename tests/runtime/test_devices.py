"""Choosing the number of CPU devices before JAX starts."""

import os
import subprocess
import sys

from jaxattn.runtime import devices


def _devices_seen(code: str, env_flags: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if env_flags is not None:
        env["XLA_FLAGS"] = env_flags
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_splits_the_cpu_before_jax_starts():
    code = ("from jaxattn.runtime.devices import split_cpu_into_devices as s; ok = s(3); import jax; "
            "print(ok, len(jax.devices()))")
    assert _devices_seen(code) == "True 3"


def test_the_users_flag_wins_and_a_started_backend_is_left_alone():
    code = ("from jaxattn.runtime.devices import split_cpu_into_devices as s; ok = s(3); import jax; "
            "print(ok, len(jax.devices()))")
    assert _devices_seen(code, f"{devices.COUNT_FLAG}=2") == "False 2"
    imported = ("import jax; from jaxattn.runtime.devices import split_cpu_into_devices as s; "
                "ok = s(3); print(ok, len(jax.devices()))")
    assert _devices_seen(imported) == "True 3"  # imported is fine: the backend has not started
    started = ("import jax; jax.devices(); from jaxattn.runtime.devices import "
               "split_cpu_into_devices as s; ok = s(3); print(ok, len(jax.devices()))")
    assert _devices_seen(started) == "False 1"
    assert devices.split_cpu_into_devices(1) is False
