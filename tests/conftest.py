import atexit
import os
import shutil
import tempfile

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# One compilation cache for the whole test session: every `nqs train` invoked in-process builds
# its jitted functions afresh, and most of them compile to the same programs.
_CACHE = tempfile.mkdtemp(prefix="nqs-test-jit-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _CACHE)
os.environ["NQS_CACHE_DIR"] = _CACHE  # and every `nqs` the tests start as a process
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
