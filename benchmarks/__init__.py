"""Side-by-side benchmarks of nqs against NetKet 3.23 (``pip install ".[bench]"``)."""
