// Deterministic data generator.
