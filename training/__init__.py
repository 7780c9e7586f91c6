"""How every bundled weight is made: training, distillation, search and pruning scripts (like diffusers' examples/).

Uses the shapes world (`models.shapes`) and the engine (`models`); nothing in the app imports this package.
"""
