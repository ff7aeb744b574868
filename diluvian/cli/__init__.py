"""The command line's parts below :mod:`diluvian.__main__` (which builds the parser).

- :mod:`diluvian.cli.checks`: option, input and output checks, run before
  any model, volume or TensorFlow is loaded;
- :mod:`diluvian.cli.commands`: one handler per command, each building what
  it needs and calling the library function.
"""
