"""Ground-truth dynamics: θ space, the CNO operator family, initial conditions, rollouts, replay.

Nothing here draws from a global RNG: every draw comes from a local generator whose seed is
derived (SHA-256) from the dataset seed, the sample id and the purpose, and stored.
"""
