"""The experiments group: data efficiency, sparsity buckets, cross-domain transfer and adaptation efficiency."""
