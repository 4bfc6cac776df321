"""The conversation language: a machine file's YAML, its model, its checker, its diagram.

`loader` reads a file into a `spec.MachineSpec` (an immutable program: states,
handlers with their conditions compiled by `expr`, actions), `check` finds what is
wrong with it (each problem naming file, line and state) and `diagram` draws it.
Nothing here runs a call: `fsm_voice.conversation` (the package above) is the running
machine, which takes a `MachineSpec` and never reads YAML.
"""
