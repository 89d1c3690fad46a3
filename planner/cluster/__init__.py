"""Planning one model over several machines (RPC) or several GPUs in one host.

members.py (who takes part), links.py (the link between them), speed.py (the pipeline), search.py
(ratios x quant), plan.py (the decision, the members' BIOS / GPU cap lines), types.py (the plan, and
the split estimate an engine answers with). What is the runtime's -- how a split places layers, each
device's buffers, the launch lines -- comes from the engine (`Engine.multi_device`; llama.cpp's:
planner/runtime/llamacpp/multi_device.py, tensor_split.py, rpc_launch.py). docs/cluster.md
describes the model and docs/accuracy.md its validation.
"""
