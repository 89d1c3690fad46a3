"""memfit validation harness: real llama.cpp vs memfit's estimator (see docs/accuracy.md)."""
