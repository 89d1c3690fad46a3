"""Runtimes behind one seam (planner/runtime/base.py `Engine`): the search, the fit solver's
partial offload and the plan's launch lines call the engine `registry.engine_for` gives them.
llama.cpp (and the apps that run it: llama-server, Ollama, LM Studio) is llamacpp/. Nothing is
imported here, so reading llama.cpp's tables (llamacpp/apps.py) stays light."""
