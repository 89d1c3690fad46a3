"""Planning one model over several machines (llama.cpp RPC) or several GPUs in one host.

members.py (who takes part), links.py (the link between them), split.py (llama.cpp's layer ->
device rule for -ts), estimate.py (each device's buffers), speed.py (the pipeline), search.py
(ratios x quant), launch.py (rpc-server and llama-server lines), plan.py (the decision).
docs/cluster.md describes the model and docs/accuracy.md its validation.
"""
