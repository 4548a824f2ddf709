"""The DiffCSE model: encoder + pooling, projection heads, frozen generator, conditional discriminator."""
