"""From stored trajectories to model batches: windows, graphs, splits, the built-in N-body set.

Modules (one concept each):
    windows.py   WindowSpec, WindowIndex, WindowDataset: T past frames + a target frame
    graphs.py    GraphSpec and the edge builders (bonds + k-hop, radius with a cap, all pairs)
    splits.py    split_windows: chronological (default), random (leaky), whole systems
    loading.py   load_systems: an H5MD file -> list[Trajectory]
    nbody.py     the charged N-body generator (EGNN's system) and its .npy layout
    builtin.py   the cached built-in data set and its default task
"""
