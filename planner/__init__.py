"""memfit: plan GGUF models onto carve-out, unified and discrete memory machines.

Data flows one way: reference -> resolver -> byte source -> GGUF header reader -> model facts
-> estimator -> device profile -> fit solver -> planner -> report -> CLI.
"""

__version__ = "0.1.0"

