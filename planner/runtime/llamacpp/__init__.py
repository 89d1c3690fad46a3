"""llama.cpp as memfit's runtime: which build an app runs and its defaults (apps.py, data in
planner/data/runtimes.toml), the flags a build takes (args.py, planner/data/llama_args.toml),
`memfit estimate`'s llama.cpp flags as RunSettings (flags.py), the launch lines (launch.py), the
partial-offload search (offload.py: -ngl, --n-cpu-moe) and the engine the planner calls
(engine.py). The estimator of its buffers is planner/estimator/."""
