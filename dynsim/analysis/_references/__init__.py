"""Reference solutions and kernels: functions of the data (and of an initialization).

What theory says gradient flow converges to or is governed by, computed without
simulating: minimum-norm and implicit-bias interpolators, max-margin separators, the
mirror links of diagonal networks, neural tangent kernels. Nothing here takes a
`SimulationResult`; the measures in `.._measures` compare results against these.
The public names are re-exported by `dynsim.analysis`.
"""
