"""Test support that ships with memfit (as numpy.testing does): GGUF writers with sparse data
regions (`ggufgen`, real-shaped repos from `data/*.json` in `realmodels`, estimator test models in
`estimator_models`), header mutators for fuzzing (`ggufmutate`), local stand-ins for the Hugging
Face Hub (`fakehub`) and the Ollama registry (`fakeregistry`), planner fakes (`planfakes`) and the
in-process CLI runner (`clirun`). Used by tests/, bench/, validation/ and fuzz/ with plain imports.

Nothing in memfit's commands imports this package: it pulls in numpy, gguf's writer and
click.testing, which the CLI's start-up keeps out (tests/test_startup.py). Import the submodules
you need; this file imports nothing."""
