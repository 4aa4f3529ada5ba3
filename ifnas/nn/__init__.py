"""Building blocks: ops, stem, reductions, the supernet and the derived network."""
