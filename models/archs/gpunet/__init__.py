"""NVIDIA's GPUNets: the seven types, their published JSON configs and the blocks they are built from."""
